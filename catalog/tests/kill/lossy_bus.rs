//! A bus that loses messages: a thief on the read model's SQS queue (on moto) receives and
//! deletes messages behind the projector's back while an admin writes. The projector must
//! notice every loss (a later version of a product: a gap; positions that never arrive: a
//! hole or a lost tail), read what is missing from the event store, count it, and end with a
//! view equal to what the admin was answered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::TestDatabase;
use uuid::Uuid;

use crate::cluster::Cluster;
use crate::{base_environment, create_published, sns_sqs_bus, wait_for_head};

fn raw_sqs() -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://{}", testkit::moto_endpoint()))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// Receives and deletes messages of `queue` until `stop`; counts them in `stolen`.
async fn steal(queue: String, stop: Arc<AtomicBool>, stolen: Arc<AtomicU64>) {
    let sqs = raw_sqs();
    let url = sqs
        .get_queue_url()
        .queue_name(&queue)
        .send()
        .await
        .expect("the read model's queue exists")
        .queue_url()
        .expect("url")
        .to_owned();
    while !stop.load(Ordering::SeqCst) {
        let Ok(received) = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
        else {
            continue;
        };
        for message in received.messages() {
            let handle = message.receipt_handle().expect("receipt handle");
            if sqs
                .delete_message()
                .queue_url(&url)
                .receipt_handle(handle)
                .send()
                .await
                .is_ok()
            {
                stolen.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// The value of `metric{projector="<projector>"}` in a Prometheus text page (0 when absent).
fn counter(page: &str, metric: &str, projector: &str) -> u64 {
    let label = format!("projector=\"{projector}\"");
    page.lines()
        .filter(|line| line.starts_with(metric) && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_deleted_behind_the_consumer_are_repaired_from_the_store_and_counted_on_sns_sqs() {
    let _alone = crate::cluster::one_at_a_time().await;
    let database = TestDatabase::create().await;
    let (bus, queue_prefix) = sns_sqs_bus("lossy");
    let cluster = Cluster::start(base_environment(&database, bus));
    let (client, token) = crate::admin_with_tools(&cluster, 10).await;

    let stop = Arc::new(AtomicBool::new(false));
    let stolen = Arc::new(AtomicU64::new(0));
    let thief = tokio::spawn(steal(
        format!("{queue_prefix}read-model.fifo"),
        stop.clone(),
        stolen.clone(),
    ));
    // product -> (version, price, sales) as the command role answered.
    let mut expected: HashMap<Uuid, (u64, i64, i64)> = HashMap::new();
    let mut ids = Vec::new();
    for index in 0..6 {
        let id = create_published(&client, &cluster, &token, &format!("LOSSY-{index}")).await;
        ids.push(id);
        expected.insert(id, (1, 1000, 0));
    }
    for write in 0..150_usize {
        let id = ids[write % ids.len()];
        let (version, price, sales) = expected[&id];
        let (request, next) = if write % 3 == 0 {
            let price = 1000 + write as i64;
            (
                client
                    .put(cluster.url("command", &format!("/api/products/{id}/price")))
                    .json(&json!({"price_cents": price, "currency": "USD"})),
                (version + 1, price, sales),
            )
        } else {
            (
                client
                    .post(cluster.url("command", &format!("/api/products/{id}/sales")))
                    .json(&json!({"quantity": 1})),
                (version + 1, price, sales + 1),
            )
        };
        let response = request.bearer_auth(&token).send().await.expect("write");
        assert!(response.status().is_success(), "{}", response.status());
        expected.insert(id, next);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A last message the thief takes has no later one to reveal it: the lost tail.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    thief.await.expect("thief");
    let stolen = stolen.load(Ordering::SeqCst);
    assert!(stolen > 0, "the thief took no message");

    wait_for_head(&client, &cluster, &database.url, Duration::from_secs(60)).await;
    for (id, (version, price, sales)) in &expected {
        let product: Value = client
            .get(cluster.url("query", &format!("/api/products/{id}")))
            .send()
            .await
            .expect("read")
            .json()
            .await
            .expect("json");
        assert_eq!(product["version"].as_u64(), Some(*version), "{product}");
        assert_eq!(product["price_cents"].as_i64(), Some(*price), "{product}");
        assert_eq!(product["sales"].as_i64(), Some(*sales), "{product}");
    }
    let page = client
        .get(cluster.url("projectors", "/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let gaps = counter(
        &page,
        "catalog_projection_gaps_repaired_total",
        "read-model",
    );
    let holes = counter(
        &page,
        "catalog_projection_holes_repaired_total",
        "read-model",
    );
    eprintln!("{stolen} messages stolen; the read model repaired {gaps} gaps and {holes} holes");
    assert!(gaps > 0, "no gap was counted with {stolen} messages stolen");
    // A message lost shows as at most one gap (the next version of its product repairs every
    // version missing before it); a hole may also be a delivery merely late.
    assert!(
        gaps <= stolen,
        "{gaps} gaps counted for {stolen} lost messages"
    );
}
