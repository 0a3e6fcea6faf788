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
