//! `catalog bus setup` and the checks of `serve` on SNS/SQS: the topics, the queues with their
//! dead-letter queues and redrive policies, the queue policies that let a topic send, and the
//! raw-delivery subscriptions. Every step finds what exists first, so setup is safe to re-run.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use events::bus::BusError;

use super::config::SqsConfig;
use crate::error::{describe, sdk_unavailable, unavailable};

/// The ARN of the topic called `name`; [`BusError::Missing`] when there is none.
pub(super) async fn find_topic(
    sns: &aws_sdk_sns::Client,
    name: String,
) -> Result<String, BusError> {
    let suffix = format!(":{name}");
    let mut token = None;
    loop {
        let page = sns
            .list_topics()
            .set_next_token(token)
            .send()
            .await
            .map_err(sdk_unavailable)?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|topic| topic.topic_arn())
            .find(|arn| arn.ends_with(&suffix))
        {
            return Ok(arn.to_owned());
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Err(BusError::Missing(format!(
                "the SNS topic {name} does not exist; create it with `catalog bus setup`"
            )));
        }
    }
}

/// The URL of the queue called `name`, `None` when it does not exist.
async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<Option<String>, BusError> {
    match sqs.get_queue_url().queue_name(name).send().await {
        Ok(output) => Ok(output.queue_url().map(str::to_owned)),
        Err(error) => {
            let missing = error
                .as_service_error()
                .is_some_and(|service| service.is_queue_does_not_exist());
            let text = describe(&error);
            if missing || text.contains("NonExistentQueue") || text.contains("QueueDoesNotExist") {
                Ok(None)
            } else {
                Err(unavailable(text))
            }
        }
    }
}

/// The URL of the queue called `name`; [`BusError::Missing`] when it does not exist.
pub(super) async fn existing_queue_url(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> Result<String, BusError> {
    queue_url(sqs, name).await?.ok_or_else(|| {
        BusError::Missing(format!(
            "the SQS queue {name} does not exist; create it with `catalog bus setup`"
        ))
    })
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, BusError> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sdk_unavailable)?;
    attributes
        .attributes()
        .and_then(|map| map.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| BusError::Unexpected(format!("queue {url} has no ARN")))
}

/// Creates a FIFO (or standard) queue, or updates its attributes when it exists; returns its
/// URL and ARN.
async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
    fifo: bool,
) -> Result<(String, String), BusError> {
    let mut all = attributes;
    if fifo {
        all.insert(QueueAttributeName::FifoQueue, "true".into());
        all.insert(
            QueueAttributeName::ContentBasedDeduplication,
            "false".into(),
        );
    }
    let url = match queue_url(sqs, name).await? {
        Some(url) => {
            all.remove(&QueueAttributeName::FifoQueue);
            sqs.set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(all))
                .send()
                .await
                .map_err(sdk_unavailable)?;
            url
        }
        None => sqs
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(all))
            .send()
            .await
            .map_err(sdk_unavailable)?
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| BusError::Unexpected(format!("created queue {name} has no URL")))?,
    };
    let arn = queue_arn(sqs, &url).await?;
    Ok((url, arn))
}

/// The attributes of a queue a consumer long-polls: the visibility timeout, and 20 s waits.
fn polled_queue(config: &SqsConfig) -> HashMap<QueueAttributeName, String> {
    HashMap::from([
        (
            QueueAttributeName::VisibilityTimeout,
            config.visibility_seconds.to_string(),
        ),
        (
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
            "20".into(),
        ),
    ])
}

/// Creates the topic `name` (FIFO when `fifo`), or finds it; returns its ARN.
async fn create_topic(
    sns: &aws_sdk_sns::Client,
    name: &str,
    fifo: bool,
) -> Result<String, BusError> {
    let mut request = sns.create_topic().name(name);
    if fifo {
        request = request
            .attributes("FifoTopic", "true")
            .attributes("ContentBasedDeduplication", "false");
    }
    let topic = request.send().await.map_err(sdk_unavailable)?;
    topic
        .topic_arn()
        .map(str::to_owned)
        .ok_or_else(|| BusError::Unexpected("created topic has no ARN".into()))
}

/// Creates the topic and, for each subscriber, its queue, dead-letter queue, queue policy and
/// raw-delivery subscription. One line per thing made or found.
pub(super) async fn setup(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    config: &SqsConfig,
    subscribers: &[&str],
) -> Result<Vec<String>, BusError> {
    let topic_arn = create_topic(sns, &config.topic_name(), true).await?;
    let mut report = vec![format!("SNS FIFO topic {topic_arn}")];
    for subscriber in subscribers {
        let dead_letter_name = config.dead_letter_queue_name(subscriber);
        let (_, dead_letter_arn) =
            ensure_queue(sqs, &dead_letter_name, HashMap::new(), true).await?;
        let mut attributes = polled_queue(config);
        attributes.insert(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({
                "deadLetterTargetArn": dead_letter_arn,
                "maxReceiveCount": config.max_receive_count.to_string(),
            })
            .to_string(),
        );
        let queue_name = config.queue_name(subscriber);
        let (queue_url, queue_arn) = ensure_queue(sqs, &queue_name, attributes, true).await?;
        allow_and_subscribe(sns, sqs, &topic_arn, &queue_url, &queue_arn).await?;
        report.push(format!(
            "SQS FIFO queue {queue_name} (dead letters: {dead_letter_name}) subscribed with raw delivery"
        ));
    }
    Ok(report)
}

/// Creates the analytics topic and the standard queue of `subscriber`, subscribed with raw
/// delivery.
pub(super) async fn setup_analytics(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    config: &SqsConfig,
    subscriber: &str,
) -> Result<Vec<String>, BusError> {
    let topic_arn = create_topic(sns, &config.analytics_topic, false).await?;
    let queue_name = config.analytics_queue_name(subscriber);
    let (queue_url, queue_arn) =
        ensure_queue(sqs, &queue_name, polled_queue(config), false).await?;
    allow_and_subscribe(sns, sqs, &topic_arn, &queue_url, &queue_arn).await?;
    Ok(vec![
        format!("SNS topic {topic_arn}"),
        format!("SQS queue {queue_name} subscribed with raw delivery"),
    ])
}

/// Lets `topic_arn` send to the queue and subscribes the queue with raw delivery.
async fn allow_and_subscribe(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    topic_arn: &str,
    queue_url: &str,
    queue_arn: &str,
) -> Result<(), BusError> {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }],
    });
    sqs.set_queue_attributes()
        .queue_url(queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .map_err(sdk_unavailable)?;
    sns.subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .return_subscription_arn(true)
        .send()
        .await
        .map_err(sdk_unavailable)?;
    Ok(())
}

/// Fails with [`BusError::Missing`] when a subscriber's queue is missing (the caller checks the
/// topic).
pub(super) async fn verify_queues(
    sqs: &aws_sdk_sqs::Client,
    config: &SqsConfig,
    subscribers: &[&str],
) -> Result<(), BusError> {
    for subscriber in subscribers {
        existing_queue_url(sqs, &config.queue_name(subscriber)).await?;
    }
    Ok(())
}
