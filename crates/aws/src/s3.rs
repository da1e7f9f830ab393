//! [`S3ManifestSource`]: manifests read from S3.

use crate::error::{error_code, is_service_error, port_error};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use percent_encoding::percent_decode_str;
use rm_core::error::PortError;
use rm_core::ports::{ManifestSource, SourceError};

/// Error codes meaning "there is no such object (version)".
const NOT_FOUND_CODES: &[&str] = &["NoSuchKey", "NotFound", "NoSuchVersion", "NoSuchBucket"];

/// The [`ManifestSource`] port on S3 GetObject.
///
/// Two facts of real S3 that moto does not reproduce shape it:
///
/// - A missing key answers **403 AccessDenied**, not 404 NoSuchKey, when the caller lacks
///   `s3:ListBucket` on the bucket. The GetObject API reference, "Permissions":
///   <https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html> ("If the object that
///   you request doesn't exist, the error that Amazon S3 returns depends on whether you also
///   have the s3:ListBucket permission"). Both answers become [`SourceError::NotFound`] (the
///   release fails with `ManifestUnreadable`); AccessDenied says the object is missing or the
///   function may not read it.
/// - S3's event notification formats URL-encode object keys (a space arrives as `+`); the
///   EventBridge format's documentation does not say whether it does. So the key is read as
///   given, and when that object is absent, once more form-decoded (`+` → space, `%XX` → byte).
#[derive(Debug, Clone)]
pub struct S3ManifestSource {
    client: Client,
}

impl S3ManifestSource {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// Why GetObject found no object to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Absent {
    /// NoSuchKey, NoSuchVersion, NoSuchBucket (or a malformed version id).
    Missing,
    /// AccessDenied: missing without s3:ListBucket, or not readable by this caller.
    Denied,
}

/// `key` form-decoded (`+` → space, then `%XX` → byte), if that differs from `key` and is
/// UTF-8.
fn form_decoded(key: &str) -> Option<String> {
    let plus_as_space = key.replace('+', " ");
    let decoded = percent_decode_str(&plus_as_space).decode_utf8().ok()?;
    (decoded != key).then(|| decoded.into_owned())
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
        let absent = match self.get(bucket, key, version_id, max_bytes).await? {
            Ok(bytes) => return Ok(bytes),
            Err(absent) => absent,
        };
        // One retry, with the key as S3 notifications encode it decoded. A denied first read
        // is retried too: without s3:ListBucket, "missing" answers AccessDenied.
        if let Some(decoded) = form_decoded(key) {
            if let Ok(bytes) = self.get(bucket, &decoded, version_id, max_bytes).await? {
                return Ok(bytes);
            }
        }
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        Err(match absent {
            Absent::Missing => SourceError::NotFound { bucket, key },
            Absent::Denied => SourceError::Unreadable {
                bucket,
                key,
                reason: "S3 answered AccessDenied: the object is missing, or this function may \
                         not read it (S3 answers AccessDenied for a missing key when the caller \
                         lacks s3:ListBucket)"
                    .into(),
            },
        })
    }
}

impl S3ManifestSource {
    /// One GetObject: the bytes, why there is no object, or any other failure.
    async fn get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        max_bytes: usize,
    ) -> Result<Result<Vec<u8>, Absent>, SourceError> {
        let too_large = |size: u64| SourceError::TooLarge {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
            max: max_bytes,
        };
        let sent = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                return if is_service_error(&e, |se| se.is_no_such_key(), NOT_FOUND_CODES)
                    // S3 answers a malformed version id with 400 InvalidArgument.
                    || (version_id.is_some() && error_code(&e) == Some("InvalidArgument"))
                {
                    Ok(Err(Absent::Missing))
                } else if error_code(&e) == Some("AccessDenied") {
                    Ok(Err(Absent::Denied))
                } else {
                    Err(SourceError::Port(port_error(
                        &format!("S3 GetObject s3://{bucket}/{key}"),
                        &e,
                    )))
                };
            }
        };
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
        Ok(Ok(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::form_decoded;

    #[test]
    fn form_decoding() {
        assert_eq!(
            form_decoded("releases/Nov+train/release-manifest.json").as_deref(),
            Some("releases/Nov train/release-manifest.json")
        );
        assert_eq!(form_decoded("a%2Bb/x.json").as_deref(), Some("a+b/x.json"));
        assert_eq!(form_decoded("a+b/x.json").as_deref(), Some("a b/x.json"));
        assert_eq!(form_decoded("plain/release-manifest.json"), None);
        assert_eq!(form_decoded("bad%FF"), None);
    }
}
