//! The documents inbox (capability 9): the list with filters, the download of a
//! document's file with its media type, and the customer's upload.

use http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};
use portal_domain::clock::{Clock, SystemClock};
use portal_domain::documents::{InboxFilter, InboxPolicy, inbox};
use portal_domain::entities::iso_date;
use portal_domain::identity::sessions::{Access, Authenticator};
use portal_domain::ids::{CustomerNumber, DocumentId};
use portal_domain::reads::ScopedReads;
use portal_domain::uploads::{FileRefusal, MAX_UPLOAD_BYTES, Upload, UploadService, check_file};
use portal_platform::files::S3Files;
use portal_platform::http::{Problem, authenticate, idempotency_key, json_response, path_param, problems, serve};
use portal_platform::identity::DynamoSessions;
use portal_platform::live::Live;
use portal_platform::reads::DynamoReads;
use portal_platform::write_path::WritePath;
use std::convert::Infallible;
use time::Date;

struct Api {
    reads: DynamoReads,
    uploads: UploadService<S3Files, WritePath, SystemClock>,
    auth: Authenticator<DynamoSessions, SystemClock>,
    policy: InboxPolicy,
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

impl Api {
    async fn handle(&self, req: Request) -> Result<Response<Body>, Infallible> {
        serve(req, |req, method, path, id| async move {
            match (method, path) {
                (Method::GET, path) if path == "/v1/me/documents" => self.list(&req, &id).await,
                (Method::GET, path) if path.starts_with("/v1/me/documents/") => self.download(&req, &path, &id).await,
                (Method::POST, path) if path == "/v1/me/documents" => self.upload(&req, &id).await,
                _ => Err(Problem::not_found()),
            }
        })
        .await
    }

    async fn list(&self, req: &Request, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let filter = filter(req)?;
        let documents = self.reads.documents(&caller).await.map_err(|e| Problem::unexpected(id, &e))?;
        Ok(json_response(StatusCode::OK, &inbox(documents, &self.policy, &filter, SystemClock.today()), id))
    }

    async fn download(&self, req: &Request, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let document = path_param(path, "/v1/me/documents/", "", DocumentId::parse).ok_or_else(Problem::not_found)?;
        let found = self.reads.document_file(&caller, &document).await.map_err(|e| Problem::unexpected(id, &e))?;
        // A document the inbox does not show cannot be downloaded either.
        let (record, bytes) =
            found.filter(|(d, _)| self.policy.shows(d, SystemClock.today())).ok_or_else(Problem::not_found)?;
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
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        Ok(response)
    }

    /// An upload: the file as the body, with its media type; `customerNumber`, `title`
    /// and `fileName` in the query. The content decides what the file is.
    async fn upload(&self, req: &Request, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
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
        let declared = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes: &[u8] = req.body().as_ref();
        check_file(bytes, declared.as_deref()).map_err(|refusal| match refusal {
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
        })?;
        let upload = Upload {
            bytes: bytes.to_vec(),
            declared_type: declared,
            customer,
            title: get("title"),
            file_name: get("fileName"),
        };
        let answer = self.uploads.upload(&caller, upload, key).await.map_err(|e| problems::change(e, id))?;
        Ok(json_response(StatusCode::CREATED, &answer, id))
    }
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
    };
    run(service_fn(|req| api.handle(req))).await
}
