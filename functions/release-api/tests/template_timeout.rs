//! release-api answers inside API Gateway's integration timeout (issue 10 item 3).
//!
//! A REST API's integration timeout is 29 s unless raised through a quota request (Amazon API
//! Gateway quotas, https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html;
//! https://aws.amazon.com/about-aws/whats-new/2024/06/amazon-api-gateway-integration-timeout-limit-29-seconds/).
//! A function allowed longer can still be claiming and starting a release when API Gateway has
//! already answered 504: the caller retries, so the function must end first, and the retry is a
//! repeat answered with the first execution (tests/events.rs).

/// API Gateway's default integration timeout for REST APIs, in seconds.
const INTEGRATION_TIMEOUT_SECONDS: u32 = 29;

/// The `Timeout:` directly under the first line `header` (at its indentation + 2 or 4, before
/// the next line at `header`'s indentation or less).
fn timeout_under(template: &str, header: &str) -> Option<u32> {
    let mut lines = template.lines().skip_while(|l| l.trim_end() != header);
    let head = lines.next()?;
    let indent = head.len() - head.trim_start().len();
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .filter(|l| {
            let i = l.len() - l.trim_start().len();
            i == indent + 2 || i == indent + 4
        })
        .find_map(|l| l.trim().strip_prefix("Timeout:"))
        .map(|v| {
            let v = v.split('#').next().unwrap().trim();
            v.parse()
                .unwrap_or_else(|_| panic!("Timeout {v:?} is not a number"))
        })
}

#[test]
fn the_release_api_function_times_out_before_api_gateway_does() {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
            .unwrap();
    assert!(
        !template.contains("TimeoutInMillis"),
        "the API sets its own integration timeout: compare against it here"
    );
    let own = timeout_under(&template, "  ReleaseApiFunction:");
    let global = timeout_under(&template, "  Function:");
    let timeout = own
        .or(global)
        .expect("a Timeout for ReleaseApiFunction or in Globals");
    assert!(
        timeout < INTEGRATION_TIMEOUT_SECONDS,
        "release-api may run {timeout} s, past API Gateway's {INTEGRATION_TIMEOUT_SECONDS} s \
         integration timeout: a slow POST would answer 504 while the release is claimed"
    );
}
