//! Document upload (capability 9, write side): a PDF, JPEG or PNG, recognised by its
//! content, at most 10 MB, kept under a key the server makes (never the client's file
//! name), shown in the customer's inbox, with record, activity and message.

use crate::changes::{self, ChangeError, Draft};
use crate::clock::Clock;
use crate::documents::object_key;
use crate::entities::iso_date;
use crate::identity::credentials::random_bytes;
use crate::identity::sessions::Caller;
use crate::ids::{CustomerNumber, DocumentId, IdempotencyKey, RequestId};
use crate::ports::{RequestWriter, StoreError};
use crate::requests::{MirrorTable, MirrorUpdate, RequestKind};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::future::Future;

/// The largest file accepted.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

/// The category under which uploads show in the inbox.
pub const UPLOAD_CATEGORY: &str = "UPLOAD";

/// The file types accepted, by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Pdf,
    Jpeg,
    Png,
}

impl FileType {
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"%PDF-") {
            Some(Self::Pdf)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else {
            None
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Jpeg => "jpg",
            Self::Png => "png",
        }
    }
}

/// Why a file is not taken (before anything is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRefusal {
    Empty,
    TooLarge,
    /// Not a PDF, JPEG or PNG by content, or not what its declared media type says.
    UnsupportedType,
}

/// Checks a file against the declared media type (`None`: not declared).
pub fn check_file(bytes: &[u8], declared: Option<&str>) -> Result<FileType, FileRefusal> {
    if bytes.is_empty() {
        return Err(FileRefusal::Empty);
    }
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(FileRefusal::TooLarge);
    }
    let kind = FileType::sniff(bytes).ok_or(FileRefusal::UnsupportedType)?;
    let declared = declared.map(|d| d.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    match declared.as_deref() {
        None | Some("application/octet-stream") => Ok(kind),
        Some("image/jpg") if kind == FileType::Jpeg => Ok(kind),
        Some(d) if d == kind.media_type() => Ok(kind),
        Some(_) => Err(FileRefusal::UnsupportedType),
    }
}

/// Where uploaded files are kept.
pub trait FileStore: Send + Sync {
    fn put(&self, key: &str, bytes: Vec<u8>, media_type: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Printable text only, at most 120 characters (a title or a file name shown in the inbox).
fn display_text(raw: Option<&str>) -> Option<String> {
    let text: String = raw?.chars().filter(|c| !c.is_control()).take(120).collect();
    let text = text.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

pub struct Upload {
    pub bytes: Vec<u8>,
    pub declared_type: Option<String>,
    pub customer: Option<CustomerNumber>,
    pub title: Option<String>,
    pub file_name: Option<String>,
}

pub struct UploadService<F, W, C> {
    pub files: F,
    pub writer: W,
    pub clock: C,
}

impl<F: FileStore, W: RequestWriter, C: Clock> UploadService<F, W, C> {
    pub async fn upload(
        &self,
        caller: &Caller,
        upload: Upload,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Value, ChangeError> {
        let customer = upload.customer.clone().or_else(|| caller.partner_numbers.first().cloned());
        let customer = customer.filter(|c| caller.owns(c)).ok_or(ChangeError::NotFound)?;
        let kind = check_file(&upload.bytes, upload.declared_type.as_deref()).map_err(|r| match r {
            FileRefusal::Empty => ChangeError::invalid("", "EMPTY_FILE", "the file is empty"),
            FileRefusal::TooLarge => ChangeError::not_possible("PAYLOAD_TOO_LARGE", "the file is larger than 10 MB"),
            FileRefusal::UnsupportedType => ChangeError::invalid(
                "",
                "UNSUPPORTED_MEDIA_TYPE",
                "send a PDF, JPEG or PNG file with its own media type",
            ),
        })?;
        let sha256 = hex::encode(Sha256::digest(&upload.bytes));
        let title = display_text(upload.title.as_deref());
        let file_name = display_text(upload.file_name.as_deref());
        let fingerprint = hex::encode(Sha256::digest(
            json!([customer, sha256, title, file_name, kind.media_type()]).to_string().as_bytes(),
        ));
        let claim = changes::claim("document-upload", customer.as_str(), idempotency_key.map(|k| (k, fingerprint)));
        if let Some(answer) = changes::replay(changes::stored(&self.writer, &claim).await?, &claim)? {
            return Ok(answer);
        }

        let request_id = RequestId::new_random();
        let document_id = DocumentId::parse(&format!("U-{}", hex::encode_upper(random_bytes::<8>())))
            .map_err(|e| StoreError(e.to_string()))?;
        let key = object_key(&customer, &document_id);
        let size = upload.bytes.len();
        let today = self.clock.today();
        let shown_title = title.clone().unwrap_or_else(|| "Hochgeladenes Dokument".to_owned());
        let document = Map::from_iter([
            ("partnerNumber".to_owned(), json!(customer)),
            ("documentId".to_owned(), json!(document_id)),
            ("accountNumber".to_owned(), Value::Null),
            ("category".to_owned(), json!(UPLOAD_CATEGORY)),
            ("date".to_owned(), json!(iso_date::format(today))),
            ("title".to_owned(), json!(shown_title)),
            ("fileName".to_owned(), json!(format!("{document_id}.{}", kind.extension()))),
            ("mediaType".to_owned(), json!(kind.media_type())),
        ]);
        let request = Draft {
            request_id,
            kind: RequestKind::DocumentUpload,
            customer: customer.clone(),
            now: self.clock.now(),
            activity_type: "DOCUMENT_UPLOADED",
            subject: format!("Dokument im Kundenportal hochgeladen: {shown_title}"),
            details: json!({
                "documentId": document_id,
                "bucketKey": key,
                "mediaType": kind.media_type(),
                "size": size,
                "sha256": sha256,
                "title": title,
                "fileName": file_name,
            }),
            mirror_updates: vec![MirrorUpdate::Insert { table: MirrorTable::Documents, item: document }],
            claim,
            answer: Map::from_iter([("documentId".to_owned(), json!(document_id))]),
        }
        .request();

        // The file first: a committed record always has its file. It goes again only when
        // the record was certainly not written (a refusal, or a concurrent retry under the
        // same key that won); after an unclear storage failure it stays.
        self.files.put(&key, upload.bytes, kind.media_type()).await?;
        let committed = changes::commit(&self.writer, request).await;
        let orphan = match &committed {
            Ok(answer) => answer.get("requestId") != Some(&json!(request_id)),
            Err(ChangeError::Store(_)) => false,
            Err(_) => true,
        };
        if orphan && let Err(e) = self.files.delete(&key).await {
            tracing::warn!(error = %e, "file of an upload that was not recorded not removed");
        }
        committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_recognised_by_content_not_by_name_or_header() {
        let pdf = b"%PDF-1.4\n...".to_vec();
        let png = b"\x89PNG\r\n\x1a\n....".to_vec();
        assert_eq!(check_file(&pdf, Some("application/pdf")), Ok(FileType::Pdf));
        assert_eq!(check_file(&png, Some("image/png")), Ok(FileType::Png));
        assert_eq!(check_file(&[0xFF, 0xD8, 0xFF, 0xE0], Some("image/jpeg")), Ok(FileType::Jpeg));
        assert_eq!(check_file(b"MZ\x90\x00", Some("application/pdf")), Err(FileRefusal::UnsupportedType), "disguised");
        assert_eq!(check_file(&pdf, Some("image/png")), Err(FileRefusal::UnsupportedType), "mislabelled");
        assert_eq!(check_file(b"<html>", None), Err(FileRefusal::UnsupportedType));
        assert_eq!(check_file(b"", None), Err(FileRefusal::Empty));
        let mut big = pdf.clone();
        big.resize(MAX_UPLOAD_BYTES + 1, b' ');
        assert_eq!(check_file(&big, None), Err(FileRefusal::TooLarge));
    }

    #[test]
    fn display_texts_lose_control_characters() {
        assert_eq!(display_text(Some(" ../../etc/passwd\n")), Some("../../etc/passwd".into()));
        assert_eq!(display_text(Some("\u{0}\u{7}")), None);
    }

    #[test]
    fn the_declared_type_may_carry_parameters_and_any_case_and_jpg_is_jpeg() {
        let pdf = b"%PDF-1.4\n...".to_vec();
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0];
        let png = b"\x89PNG\r\n\x1a\n....".to_vec();
        assert_eq!(check_file(&pdf, Some("Application/PDF; charset=binary")), Ok(FileType::Pdf));
        assert_eq!(check_file(&pdf, Some("application/octet-stream")), Ok(FileType::Pdf));
        assert_eq!(check_file(&pdf, None), Ok(FileType::Pdf));
        assert_eq!(check_file(&jpeg, Some("image/jpg")), Ok(FileType::Jpeg));
        assert_eq!(check_file(&png, Some("image/jpg")), Err(FileRefusal::UnsupportedType));
        assert_eq!(check_file(&jpeg, Some("image/png")), Err(FileRefusal::UnsupportedType));
        let mut largest = pdf.clone();
        largest.resize(10 * 1024 * 1024, b' ');
        assert_eq!(largest.len(), MAX_UPLOAD_BYTES);
        assert_eq!(check_file(&largest, None), Ok(FileType::Pdf));
        assert_eq!(
            [FileType::Pdf, FileType::Jpeg, FileType::Png].map(|t| (t.media_type(), t.extension())),
            [("application/pdf", "pdf"), ("image/jpeg", "jpg"), ("image/png", "png")]
        );
    }

    #[test]
    fn display_texts_are_at_most_120_characters() {
        assert_eq!(display_text(None), None);
        assert_eq!(display_text(Some("   ")), None);
        assert_eq!(display_text(Some(&"ä".repeat(130))), Some("ä".repeat(120)));
        assert_eq!(display_text(Some("Zähler\tfoto")), Some("Zählerfoto".into()));
    }

    use crate::clock::FixedClock;
    use crate::memory::{MemoryFiles, MemoryWriter};
    use crate::requests::WriteError;
    use crate::testkit::{NOW, caller, run};

    fn service() -> UploadService<MemoryFiles, MemoryWriter, FixedClock> {
        UploadService { files: MemoryFiles::default(), writer: MemoryWriter::default(), clock: FixedClock(NOW) }
    }

    fn upload(bytes: &[u8], customer: Option<&str>) -> Upload {
        Upload {
            bytes: bytes.to_vec(),
            declared_type: Some("application/pdf".into()),
            customer: customer.map(|c| CustomerNumber::parse(c).unwrap()),
            title: Some(" Zählerfoto\n".into()),
            file_name: Some("IMG 1.pdf".into()),
        }
    }

    fn key(k: &str) -> Option<IdempotencyKey> {
        Some(IdempotencyKey::parse(k).unwrap())
    }

    #[test]
    fn an_upload_is_stored_under_a_key_of_the_server_and_shown_in_the_inbox() {
        let s = service();
        let c = caller(&["1000002", "1000005"]);
        let answer = run(s.upload(&c, upload(b"%PDF-1.7 file", None), None)).unwrap();
        let committed = s.writer.committed();
        let r = &committed[0];
        let id = answer["documentId"].as_str().unwrap().to_owned();
        assert!(id.starts_with("U-") && id.len() == 18, "{id}");
        assert_eq!(answer["requestId"], json!(r.request_id));
        assert_eq!(r.customer.as_ref().unwrap().as_str(), "1000002", "the first customer number");
        assert_eq!(s.files.keys(), [format!("documents/1000002/{id}")]);
        assert_eq!(r.kind, RequestKind::DocumentUpload);
        assert_eq!(r.activities[0].subject, "Dokument im Kundenportal hochgeladen: Zählerfoto");
        assert_eq!(
            r.record,
            json!({
                "documentId": id, "bucketKey": format!("documents/1000002/{id}"), "mediaType": "application/pdf",
                "size": 13, "sha256": hex::encode(Sha256::digest(b"%PDF-1.7 file")), "title": "Zählerfoto",
                "fileName": "IMG 1.pdf",
            })
        );
        let [MirrorUpdate::Insert { table: MirrorTable::Documents, item }] = r.mirror_updates.as_slice() else {
            panic!()
        };
        assert_eq!(
            Value::Object(item.clone()),
            json!({
                "partnerNumber": "1000002", "documentId": id, "accountNumber": null, "category": "UPLOAD",
                "date": "2026-12-01", "title": "Zählerfoto", "fileName": format!("{id}.pdf"), "mediaType": "application/pdf",
            })
        );
        // For another of the caller's customers, and without a title.
        let untitled = Upload { title: None, ..upload(b"%PDF-1.7 other", Some("1000005")) };
        run(s.upload(&c, untitled, None)).unwrap();
        let r = &s.writer.committed()[1];
        assert_eq!(r.customer.as_ref().unwrap().as_str(), "1000005");
        let [MirrorUpdate::Insert { item, .. }] = r.mirror_updates.as_slice() else { panic!() };
        assert_eq!(item["title"], "Hochgeladenes Dokument");
    }

    #[test]
    fn a_refused_file_or_customer_stores_nothing() {
        let s = service();
        let c = caller(&["1000002"]);
        let code = |r: Result<Value, ChangeError>| match r {
            Err(ChangeError::Invalid { code, .. } | ChangeError::NotPossible { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert!(matches!(run(s.upload(&c, upload(b"%PDF-1", Some("1000001")), None)), Err(ChangeError::NotFound)));
        assert!(matches!(run(s.upload(&caller(&[]), upload(b"%PDF-1", None), None)), Err(ChangeError::NotFound)));
        assert_eq!(code(run(s.upload(&c, upload(b"", None), None))), "EMPTY_FILE");
        assert_eq!(code(run(s.upload(&c, upload(b"<html>", None), None))), "UNSUPPORTED_MEDIA_TYPE");
        let mut big = b"%PDF-1".to_vec();
        big.resize(MAX_UPLOAD_BYTES + 1, b' ');
        assert_eq!(code(run(s.upload(&c, upload(&big, None), None))), "PAYLOAD_TOO_LARGE");
        assert!(s.files.keys().is_empty() && s.writer.committed().is_empty());
    }

    #[test]
    fn a_retry_replays_and_a_file_without_a_record_is_removed() {
        let s = service();
        let c = caller(&["1000002"]);
        let first = run(s.upload(&c, upload(b"%PDF-1 a", None), key("k"))).unwrap();
        assert_eq!(run(s.upload(&c, upload(b"%PDF-1 a", None), key("k"))).unwrap(), first);
        let other = run(s.upload(&c, upload(b"%PDF-1 b", None), key("k")));
        assert!(matches!(other, Err(ChangeError::IdempotencyKeyReused)), "{other:?}");
        assert_eq!(s.files.keys().len(), 1);

        // Refused by the write path: the file goes again.
        s.writer.refuse_next_commit(WriteError::Conflict);
        assert!(matches!(run(s.upload(&c, upload(b"%PDF-1 c", None), None)), Err(ChangeError::Conflict)));
        assert_eq!(s.files.keys().len(), 1);
        // A concurrent retry won: its record stands, this file goes.
        let winner = crate::requests::StoredAnswer {
            request_id: RequestId::new_random(),
            fingerprint: hex::encode(Sha256::digest(
                json!([
                    "1000002",
                    hex::encode(Sha256::digest(b"%PDF-1 d")),
                    "Zählerfoto",
                    "IMG 1.pdf",
                    "application/pdf"
                ])
                .to_string()
                .as_bytes(),
            )),
            body: json!({"requestId": "the winner's"}),
        };
        s.writer.lose_next_race(Some(winner));
        assert_eq!(
            run(s.upload(&c, upload(b"%PDF-1 d", None), key("k2"))).unwrap(),
            json!({"requestId": "the winner's"})
        );
        assert_eq!(s.files.keys().len(), 1);
        // An unclear storage failure: the file stays, the record may exist.
        s.writer.refuse_next_commit(WriteError::Store(StoreError("timeout".into())));
        assert!(matches!(run(s.upload(&c, upload(b"%PDF-1 e", None), None)), Err(ChangeError::Store(_))));
        assert_eq!(s.files.keys().len(), 2);
    }
}
