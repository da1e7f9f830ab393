//! [`S3ManifestSource`]: manifests read from S3.

use crate::error::{error_code, is_service_error, port_error};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use rm_core::error::PortError;
use rm_core::ports::{ManifestSource, SourceError};

/// Error codes meaning "there is no such object (version)".
const NOT_FOUND_CODES: &[&str] = &["NoSuchKey", "NotFound", "NoSuchVersion", "NoSuchBucket"];

/// The [`ManifestSource`] port on S3 GetObject.
#[derive(Debug, Clone)]
pub struct S3ManifestSource {
    client: Client,
}

impl S3ManifestSource {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ManifestSource for S3ManifestSource {
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        max_bytes: usize,
    ) -> Result<Vec<u8>, SourceError> {
        let not_found = || SourceError::NotFound {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        };
        let too_large = |size: u64| SourceError::TooLarge {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
            max: max_bytes,
        };
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| {
                if is_service_error(&e, |se| se.is_no_such_key(), NOT_FOUND_CODES)
                    // S3 answers a malformed version id with 400 InvalidArgument.
                    || (version_id.is_some() && error_code(&e) == Some("InvalidArgument"))
                {
                    not_found()
                } else {
                    SourceError::Port(port_error(&format!("S3 GetObject s3://{bucket}/{key}"), &e))
                }
            })?;
        if let Some(length) = out.content_length.and_then(|l| u64::try_from(l).ok()) {
            if length > max_bytes as u64 {
                // Dropping the body closes the connection without reading it.
                return Err(too_large(length));
            }
        }
        let mut body = out.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                SourceError::Port(PortError::Transient(format!(
                    "S3 GetObject s3://{bucket}/{key}: reading the body failed: {e}"
                )))
            })?;
            if bytes.len() + chunk.len() > max_bytes {
                return Err(too_large((bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}
