//! The documents inbox (capability 9): the list with filters, the download of a
//! document's file with its media type, and the customer's upload. Files above
//! `files::INLINE_MAX_BYTES` go to and from S3 by presigned URL (`303 See Other` for a
//! download; `POST /v1/me/document-uploads`, then the upload completed by its `uploadId`).

use http::{HeaderValue, StatusCode, header};
use jsonschema::Validator;
use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};
use portal_domain::clock::{Clock, SystemClock};
use portal_domain::documents::{InboxFilter, InboxPolicy, inbox};
use portal_domain::entities::iso_date;
use portal_domain::identity::credentials::random_bytes;
use portal_domain::identity::sessions::Access;
use portal_domain::ids::{CustomerNumber, DocumentId, IdempotencyKey};
use portal_domain::reads::ScopedReads;
use portal_domain::uploads::{FileRefusal, MAX_UPLOAD_BYTES, Upload, UploadService, check_file};
use portal_platform::files::{INLINE_MAX_BYTES, LINK_LIFETIME, S3Files, Staged, staging_key};
use portal_platform::http::Call;
use portal_platform::http::{Problem, idempotency_key, json_response, problems, read_json};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::reads::{Download, DynamoReads};
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use time::Date;

struct Api {
    reads: DynamoReads,
    uploads: UploadService<S3Files, WritePath, SystemClock>,
    auth: LiveAuthenticator,
    policy: InboxPolicy,
    upload_link_schema: Validator,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadLinkBody {
    media_type: String,
}

/// The filter from the query string: `category`, `from`, `to` (dates YYYY-MM-DD).
fn filter(req: &Request) -> Result<InboxFilter, Problem> {
    let query = req.query_string_parameters_ref();
    let get = |name: &str| query.and_then(|q| q.first(name)).map(str::to_owned);
    let date = |name: &str| -> Result<Option<Date>, Problem> {
        get(name)
            .map(|v| {
                Date::parse(&v, iso_date::FORMAT)
                    .map_err(|_| problems::invalid_query(name, "expected a date YYYY-MM-DD"))
            })
            .transpose()
    };
    let category = get("category");
    if category.as_ref().is_some_and(|c| c.len() > 40 || !c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')) {
        return Err(problems::invalid_query("category", "expected a category key such as INVOICE"));
    }
    Ok(InboxFilter { category, from: date("from")?, to: date("to")? })
}

portal_platform::handle_routes!(Api, "documents", {
    GetDocuments => list,
    DownloadDocument => download,
    UploadDocument => upload,
    CreateUploadLink => upload_link,
});

impl Api {
    async fn list(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (req, id) = (&call.req, call.id.as_str());
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let filter = filter(req)?;
        let (documents, policy) =
            tokio::try_join!(self.reads.documents(&caller), self.policy()).map_err(|e| Problem::unexpected(id, &e))?;
        Ok(json_response(StatusCode::OK, &inbox(documents, &policy, &filter, SystemClock.today()), id))
    }

    /// What the inbox shows: the CRM's configuration, else the deployment's.
    async fn policy(&self) -> Result<InboxPolicy, portal_domain::ports::StoreError> {
        Ok(self.reads.inbox_policy().await?.unwrap_or_else(|| self.policy.clone()))
    }

    async fn download(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let id = call.id.as_str();
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let document = call.path("documentId", DocumentId::parse)?;
        let (found, policy) = tokio::try_join!(self.reads.document_download(&caller, &document), self.policy())
            .map_err(|e| Problem::unexpected(id, &e))?;
        // A document the inbox does not show cannot be downloaded either.
        let (record, file) =
            found.filter(|(d, _)| policy.shows(d, SystemClock.today())).ok_or_else(Problem::not_found)?;
        let mut response = match file {
            Download::Inline(bytes) => {
                let mut response = Response::new(Body::Binary(bytes));
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_str(&record.media_type).map_err(|e| Problem::unexpected(id, &e))?,
                );
                let disposition = format!("attachment; filename=\"{}\"", record.document_id);
                headers.insert(
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_str(&disposition).map_err(|e| Problem::unexpected(id, &e))?,
                );
                response
            }
            // Too large to pass through the function: S3 serves it for a few minutes.
            Download::Link(key) => {
                let url = self
                    .uploads
                    .files
                    .download_link(&key, &record.media_type, record.document_id.as_str())
                    .await
                    .map_err(|e| Problem::unexpected(id, &e))?;
                let mut response = Response::new(Body::Empty);
                *response.status_mut() = StatusCode::SEE_OTHER;
                response
                    .headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_str(&url).map_err(|e| Problem::unexpected(id, &e))?);
                response
            }
        };
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(id) {
            headers.insert("x-request-id", value);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        Ok(response)
    }

    /// An upload: the file as the body, with its media type; or, for a file staged through
    /// an upload link, `uploadId` in the query and no body. `customerNumber`, `title` and
    /// `fileName` in the query. The content decides what the file is.
    async fn upload(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (req, id) = (&call.req, call.id.as_str());
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let key = idempotency_key(req)?;
        let query = req.query_string_parameters_ref();
        let get = |name: &str| query.and_then(|q| q.first(name)).map(str::to_owned);
        let customer = get("customerNumber")
            .map(|c| {
                CustomerNumber::parse(&c)
                    .map_err(|_| problems::invalid_query("customerNumber", "expected a customer number"))
            })
            .transpose()?;
        for name in ["title", "fileName"] {
            if get(name).is_some_and(|v| v.chars().count() > 120) {
                return Err(problems::invalid_query(name, "at most 120 characters"));
            }
        }
        let (staged, key) = match get("uploadId") {
            None => (None, key),
            // A completion is answered once per upload: the upload id is its idempotency key
            // (whatever key the client sends), so a repeat replays the first answer. The
            // staged file stays for such a repeat until the bucket's lifecycle rule removes it.
            Some(upload_id) if is_upload_id(&upload_id) => (
                Some(staging_key(&caller.login_id, &upload_id)),
                IdempotencyKey::parse(&format!("upload-{upload_id}")).ok(),
            ),
            Some(_) => return Err(problems::invalid_query("uploadId", "expected the uploadId of an upload link")),
        };
        let (bytes, declared_type) = match &staged {
            None => (
                req.body().as_ref().to_vec(),
                req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned),
            ),
            Some(_) if !req.body().as_ref().is_empty() => {
                return Err(problems::invalid_query("uploadId", "send either the file or its uploadId"));
            }
            Some(staging) => {
                let found = self.uploads.files.staged(staging, MAX_UPLOAD_BYTES as u64).await;
                match found.map_err(|e| Problem::unexpected(id, &e))? {
                    Staged::Missing => return Err(upload_not_found()),
                    Staged::TooLarge => return Err(refused(FileRefusal::TooLarge)),
                    Staged::File { bytes, media_type } => (bytes, media_type),
                }
            }
        };
        check_file(&bytes, declared_type.as_deref()).map_err(refused)?;
        let upload = Upload { bytes, declared_type, customer, title: get("title"), file_name: get("fileName") };
        let answer = self.uploads.upload(&caller, upload, key).await.map_err(|e| problems::change(e, id))?;
        Ok(json_response(StatusCode::CREATED, &answer, id))
    }

    /// A presigned URL to `PUT` one file of the given media type (up to the upload limit),
    /// for files too large to send through the API; the upload is then completed with
    /// `POST /v1/me/documents?uploadId=…`.
    async fn upload_link(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (req, id) = (&call.req, call.id.as_str());
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let (body, _) = read_json::<UploadLinkBody>(req, &self.upload_link_schema)?;
        let upload_id = hex::encode(random_bytes::<16>());
        let url = self
            .uploads
            .files
            .upload_link(&staging_key(&caller.login_id, &upload_id), &body.media_type)
            .await
            .map_err(|e| Problem::unexpected(id, &e))?;
        let expires_at = SystemClock.now() + LINK_LIFETIME;
        let answer = serde_json::json!({
            "uploadId": upload_id,
            "uploadUrl": url,
            "method": "PUT",
            "headers": { "Content-Type": body.media_type },
            "expiresAt": portal_domain::entities::timestamp::format(expires_at),
            "maxBytes": MAX_UPLOAD_BYTES,
            "inlineMaxBytes": INLINE_MAX_BYTES,
        });
        Ok(json_response(StatusCode::CREATED, &answer, id))
    }
}

/// Why a file is not taken, as a problem.
fn refused(refusal: FileRefusal) -> Problem {
    match refusal {
        FileRefusal::Empty => Problem::new(StatusCode::BAD_REQUEST, "EMPTY_FILE", "The file is empty."),
        FileRefusal::TooLarge => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("A file may hold at most {MAX_UPLOAD_BYTES} bytes."),
        ),
        FileRefusal::UnsupportedType => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Upload a PDF, JPEG or PNG file, sent with its own media type.",
        ),
    }
}

fn upload_not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "UPLOAD_NOT_FOUND",
        "There is no file under this uploadId: upload it to the link first (links expire after a few minutes).",
    )
}

/// An upload id as `upload_link` makes them: 32 lower-case hex digits.
fn is_upload_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api {
        reads: live.reads(),
        uploads: UploadService { files: live.files(), writer: live.writer(), clock: SystemClock },
        auth: live.authenticator(),
        policy: live.config.inbox.clone(),
        upload_link_schema: schemas::compile("document-upload-link.request.schema.json")?,
    };
    run(service_fn(|req| api.handle(req))).await
}
