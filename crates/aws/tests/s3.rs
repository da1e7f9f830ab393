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
