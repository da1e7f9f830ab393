//! S3ManifestSource with the real SDK client against moto server (scripts/test starts it).

use rm_aws::S3ManifestSource;
use rm_core::ports::{ManifestSource, SourceError};
use rm_testkit::{moto_endpoint, sdk_config, unique_name};

async fn s3() -> aws_sdk_s3::Client {
    let cfg = sdk_config(&moto_endpoint()).await;
    // A bucket's virtual host cannot resolve to a loopback server.
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&cfg)
            .force_path_style(true)
            .build(),
    )
}

async fn bucket(client: &aws_sdk_s3::Client) -> String {
    let name = unique_name("manifests");
    client.create_bucket().bucket(&name).send().await.unwrap();
    name
}

async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) -> Option<String> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap()
        .version_id
}

const MANIFEST: &[u8] = br#"{"releaseId": 5.10, "pipelines": ["a"]}"#;

#[tokio::test]
async fn reads_an_existing_object() {
    let client = s3().await;
    let b = bucket(&client).await;
    put(&client, &b, "releases/release-manifest.json", MANIFEST).await;
    let source = S3ManifestSource::new(client);
    let bytes = source
        .read(&b, "releases/release-manifest.json", None, 256 * 1024)
        .await
        .unwrap();
    assert_eq!(bytes, MANIFEST);
    // Exactly at the limit is allowed.
    let exact = source
        .read(&b, "releases/release-manifest.json", None, MANIFEST.len())
        .await
        .unwrap();
    assert_eq!(exact, MANIFEST);
}

#[tokio::test]
async fn a_missing_object_or_bucket_is_not_found() {
    let client = s3().await;
    let b = bucket(&client).await;
    let source = S3ManifestSource::new(client);
    let err = source.read(&b, "nope.json", None, 1024).await.unwrap_err();
    assert_eq!(
        err,
        SourceError::NotFound {
            bucket: b.clone(),
            key: "nope.json".into()
        }
    );
    assert_eq!(
        err.to_string(),
        format!("s3://{b}/nope.json does not exist")
    );
    let err = source
        .read("no-such-bucket-rm-aws", "k", None, 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_larger_object_is_too_large() {
    let client = s3().await;
    let b = bucket(&client).await;
    let big = vec![b' '; 300 * 1024];
    put(&client, &b, "big.json", &big).await;
    let source = S3ManifestSource::new(client);
    let err = source
        .read(&b, "big.json", None, 256 * 1024)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SourceError::TooLarge {
            bucket: b.clone(),
            key: "big.json".into(),
            size: 300 * 1024,
            max: 256 * 1024
        }
    );
}

#[tokio::test]
async fn reads_the_given_version() {
    let client = s3().await;
    let b = bucket(&client).await;
    client
        .put_bucket_versioning()
        .bucket(&b)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v1 = put(&client, &b, "m.json", b"first")
        .await
        .expect("a version id");
    let v2 = put(&client, &b, "m.json", b"second")
        .await
        .expect("a version id");
    assert_ne!(v1, v2);
    let source = S3ManifestSource::new(client);
    assert_eq!(
        source.read(&b, "m.json", Some(&v1), 1024).await.unwrap(),
        b"first"
    );
    assert_eq!(
        source.read(&b, "m.json", Some(&v2), 1024).await.unwrap(),
        b"second"
    );
    assert_eq!(
        source.read(&b, "m.json", None, 1024).await.unwrap(),
        b"second"
    );
    let err = source
        .read(&b, "m.json", Some("3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err:?}");
}

// ------------------------------------------------------------------ keys with a space or `+`

#[tokio::test]
async fn a_key_with_a_space_is_read_as_given_or_form_encoded() {
    let client = s3().await;
    let b = bucket(&client).await;
    let key = "releases/Nov train/release-manifest.json";
    put(&client, &b, key, MANIFEST).await;
    let source = S3ManifestSource::new(client);
    for given in [
        key,
        // S3's notification formats encode keys: a space is `+` (or %20).
        "releases/Nov+train/release-manifest.json",
        "releases/Nov%20train/release-manifest.json",
    ] {
        let bytes = source
            .read(&b, given, None, 1024)
            .await
            .unwrap_or_else(|e| panic!("{given}: {e}"));
        assert_eq!(bytes, MANIFEST, "{given}");
    }
}

#[tokio::test]
async fn a_key_with_a_plus_is_read_as_given_first() {
    let client = s3().await;
    let b = bucket(&client).await;
    put(&client, &b, "a+b/x.json", b"plus").await;
    let source = S3ManifestSource::new(client.clone());
    assert_eq!(
        source.read(&b, "a+b/x.json", None, 1024).await.unwrap(),
        b"plus"
    );
    // Encoded, `+` is %2B.
    assert_eq!(
        source.read(&b, "a%2Bb/x.json", None, 1024).await.unwrap(),
        b"plus"
    );
    // The key as given wins over its decoded form when both exist.
    put(&client, &b, "a b/x.json", b"space").await;
    assert_eq!(
        source.read(&b, "a+b/x.json", None, 1024).await.unwrap(),
        b"plus"
    );
    assert_eq!(
        source.read(&b, "a b/x.json", None, 1024).await.unwrap(),
        b"space"
    );
}

#[tokio::test]
async fn a_missing_encoded_key_is_reported_as_given() {
    let client = s3().await;
    let b = bucket(&client).await;
    let source = S3ManifestSource::new(client);
    let err = source
        .read(&b, "releases/Dec+train/release-manifest.json", None, 1024)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SourceError::NotFound {
            bucket: b.clone(),
            key: "releases/Dec+train/release-manifest.json".into()
        }
    );
}

// ------------------------------------------------------------------ AccessDenied (mocked)
//
// moto enforces no IAM, so it never answers a missing key with 403 AccessDenied as S3 does for
// a caller without s3:ListBucket: aws-smithy-mocks stands in for S3 here.

mod access_denied {
    use super::MANIFEST;
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::Client;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use rm_aws::S3ManifestSource;
    use rm_core::ports::{ManifestSource, SourceError};

    fn client(rules: &[&Rule]) -> Client {
        mock_client!(aws_sdk_s3, RuleMode::Sequential, rules, |c| c
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()))
    }

    fn denied(key: &'static str) -> Rule {
        mock!(Client::get_object)
            .match_requests(move |r| r.key() == Some(key))
            .then_error(|| {
                GetObjectError::generic(
                    ErrorMetadata::builder()
                        .code("AccessDenied")
                        .message("Access Denied")
                        .build(),
                )
            })
    }

    #[tokio::test]
    async fn a_denied_read_is_not_found_and_says_why() {
        let rule = denied("releases/r1/release-manifest.json");
        let source = S3ManifestSource::new(client(&[&rule]));
        let err = source
            .read("bkt", "releases/r1/release-manifest.json", None, 1024)
            .await
            .unwrap_err();
        let SourceError::Unreadable { bucket, key, .. } = &err else {
            panic!("expected Unreadable (ManifestUnreadable), got {err:?}");
        };
        assert_eq!(bucket, "bkt");
        assert_eq!(key, "releases/r1/release-manifest.json");
        let message = err.to_string();
        for part in [
            "s3://bkt/releases/r1/release-manifest.json",
            "AccessDenied",
            "the object is missing, or this function may not read it",
            "s3:ListBucket",
        ] {
            assert!(message.contains(part), "{part:?} not in {message}");
        }
        // Nothing to decode: one request.
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_denied_encoded_key_is_retried_decoded() {
        // Without s3:ListBucket, the encoded key (absent) answers AccessDenied, not NoSuchKey.
        let first = denied("releases/Nov+train/release-manifest.json");
        let second = mock!(Client::get_object)
            .match_requests(|r| r.key() == Some("releases/Nov train/release-manifest.json"))
            .then_output(|| {
                GetObjectOutput::builder()
                    .content_length(MANIFEST.len() as i64)
                    .body(ByteStream::from_static(MANIFEST))
                    .build()
            });
        let source = S3ManifestSource::new(client(&[&first, &second]));
        let bytes = source
            .read(
                "bkt",
                "releases/Nov+train/release-manifest.json",
                None,
                1024,
            )
            .await
            .unwrap();
        assert_eq!(bytes, MANIFEST);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }
}
