use rm_aws::S3ManifestSource;
use rm_core::handlers::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rm_aws::serve_task(Function::CheckManifest, |config| {
        S3ManifestSource::new(aws_sdk_s3::Client::new(config))
    })
    .await
}
