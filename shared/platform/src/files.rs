//! The document store for uploads: S3 objects under keys the server makes.

use crate::dynamo::store_error;
use aws_sdk_s3::primitives::ByteStream;
use portal_domain::ports::StoreError;
use portal_domain::uploads::FileStore;

#[derive(Debug, Clone)]
pub struct S3Files {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Files {
    pub fn new(s3: aws_sdk_s3::Client, bucket: String) -> Self {
        Self { s3, bucket }
    }
}

impl FileStore for S3Files {
    async fn put(&self, key: &str, bytes: Vec<u8>, media_type: &str) -> Result<(), StoreError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(media_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("PutObject", e))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("DeleteObject", e))
    }
}

/// Files larger than this do not pass through the function: Lambda's 6 MB payload limit,
/// with base64 on the way through API Gateway, caps a body at about 4.4 MB. They go to and
/// from S3 by presigned URL instead.
pub const INLINE_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// How long a presigned URL may be used.
pub const LINK_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// Where a login's upload waits between its presigned `PUT` and its completion. The
/// bucket's lifecycle rule removes an upload that is never completed after a day.
pub fn staging_key(login: &portal_domain::ids::LoginId, upload_id: &str) -> String {
    format!("uploads/{login}/{upload_id}")
}

/// A staged upload, as found at completion.
pub enum Staged {
    Missing,
    TooLarge,
    File { bytes: Vec<u8>, media_type: Option<String> },
}

impl S3Files {
    /// A URL that reads one file for [`LINK_LIFETIME`], served as an attachment with its
    /// media type.
    pub async fn download_link(&self, key: &str, media_type: &str, file_name: &str) -> Result<String, StoreError> {
        let presigning = aws_sdk_s3::presigning::PresigningConfig::expires_in(LINK_LIFETIME)
            .map_err(|e| store_error("presign", e))?;
        self.s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(media_type)
            .response_content_disposition(format!("attachment; filename=\"{file_name}\""))
            .response_cache_control("private, no-store")
            .presigned(presigning)
            .await
            .map(|r| r.uri().to_owned())
            .map_err(|e| store_error("presign GetObject", e))
    }

    /// A URL that stores one file of `media_type` under `key` for [`LINK_LIFETIME`] (the
    /// `Content-Type` header is part of the signature).
    pub async fn upload_link(&self, key: &str, media_type: &str) -> Result<String, StoreError> {
        let presigning = aws_sdk_s3::presigning::PresigningConfig::expires_in(LINK_LIFETIME)
            .map_err(|e| store_error("presign", e))?;
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(media_type)
            .presigned(presigning)
            .await
            .map(|r| r.uri().to_owned())
            .map_err(|e| store_error("presign PutObject", e))
    }

    /// The staged file under `key`, read only when it is within `max_bytes`.
    pub async fn staged(&self, key: &str, max_bytes: u64) -> Result<Staged, StoreError> {
        let out = match self.s3.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(Staged::Missing),
            Err(e) => return Err(store_error("GetObject", e)),
        };
        if out.content_length().is_some_and(|n| n < 0 || n as u64 > max_bytes) {
            return Ok(Staged::TooLarge);
        }
        let media_type = out.content_type().map(str::to_owned);
        let bytes = out.body.collect().await.map_err(|e| StoreError(format!("GetObject body: {e}")))?;
        Ok(Staged::File { bytes: bytes.into_bytes().to_vec(), media_type })
    }
}
