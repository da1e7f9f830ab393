#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rm_aws::serve_task(
        rm_core::handlers::Function::RecordState,
        rm_aws::no_manifests,
    )
    .await
}
