//! `catalog-bench lag`: from a command's answer to its event applied by the read-model
//! projector, through the whole distributed write path in this process: the command service
//! on the PostgreSQL store (group commit, outbox), the outbox relay, the bus, and the projector
//! runner on the PostgreSQL read model. The database is created for the run and dropped after.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use command_api::commands::{ChangePrice, CreateCategory, CreateProduct, ProductCommand};
use command_api::service::CommandService;
use event_store::outbox::OutboxRelay;
use event_store::postgres::PostgresDatabase;
use events::bus::EventBus;
use events::values::{Currency, PriceCents, ValueError};
use events::{CategoryCreated, Envelope, EventMetadata, ProductCreated, ProductStatus};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use projectors::read_model::postgres::{migrate, PostgresReadModelProjection};
use projectors::runner::Projector;
use projectors::{Applied, Projection, ProjectionError};
use rand::Rng;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::report::{histogram, percentiles};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BusKind {
    /// librdkafka's mock cluster (3 brokers) in this process.
    KafkaMock,
    /// SNS FIFO → SQS FIFO at a moto endpoint (CATALOG_TEST_SQS_ENDPOINT, or one started).
    SnsSqs,
}

#[derive(Debug, clap::Args)]
/// End-to-end lag from command answer to projection, through outbox, relay and bus.
pub struct Args {
    #[arg(long, value_enum)]
    bus: BusKind,
    /// Commands to send (after a warm-up of 10 % more).
    #[arg(long, default_value_t = 2000)]
    commands: usize,
    /// Commands per second (an open loop: the pace does not wait for the lag).
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Products the commands spread over.
    #[arg(long, default_value_t = 100)]
    products: usize,
    /// librdkafka options for the Kafka clients (`fetch.wait.max.ms=10`), repeatable.
    #[arg(long = "kafka-option", value_parser = parse_option)]
    kafka_options: Vec<(String, String)>,
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not key=value"))
}

/// Wraps the projection and notes when each position was applied.
struct Timed {
    inner: PostgresReadModelProjection,
    applied_at: Mutex<HashMap<u64, Instant>>,
}

#[async_trait]
impl Projection for Timed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let applied = self.inner.apply(envelope, checkpoint).await?;
        if applied == Applied::Applied {
            self.applied_at
                .lock()
                .entry(envelope.position)
                .or_insert_with(Instant::now);
        }
        Ok(applied)
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        self.inner.checkpoint().await
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let test_database = testkit::TestDatabase::create().await;
    let database = migrated_database(&test_database.url).await?;
    let bus = BusUnderTest::connect(&args).await?;

    let store: Arc<dyn events::store::EventStore> = Arc::new(database.event_store(true));
    let commands = Arc::new(CommandService::new(store.clone(), None));
    let relay = tokio::spawn(OutboxRelay::new(database.pool().clone(), bus.bus.clone()).run());
    let timed = Arc::new(Timed {
        inner: PostgresReadModelProjection::new(database.pool().clone(), "read-model"),
        applied_at: Mutex::new(HashMap::new()),
    });
    let projector = Projector::new(timed.clone(), store.clone());
    let running = tokio::spawn(projector.clone().run(bus.bus.clone()));

    let ids = create_products(&commands, args.products).await?;
    wait_until_caught_up(&projector, store.as_ref()).await?;
    let warm_up = args.commands / 10;
    let answered = send_price_changes(&commands, &ids, args.rate, warm_up, args.commands).await?;
    wait_until_applied(&timed, &answered).await?;
    let lags = lags(&timed, &answered)?;
    println!(
        "{:?}: {} commands at {}/s (after {warm_up} warm-up), answer → applied: {}",
        args.bus,
        answered.len(),
        args.rate,
        percentiles(&lags)
    );
    running.abort();
    relay.abort();
    database.close().await;
    Ok(())
}

/// The run's database with the event store's and the read model's tables.
async fn migrated_database(url: &str) -> anyhow::Result<PostgresDatabase> {
    let database = PostgresDatabase::connect(url, 20)
        .await
        .context("connect to the run's database")?;
    database
        .migrate()
        .await
        .context("migrate the event store")?;
    migrate(database.pool())
        .await
        .context("migrate the read model")?;
    Ok(database)
}

/// The bus of the run, with the mock cluster it runs on (kept alive for the run).
struct BusUnderTest {
    bus: Arc<dyn EventBus>,
    _mock_cluster: Option<MockCluster<'static, DefaultProducerContext>>,
}

impl BusUnderTest {
    async fn connect(args: &Args) -> anyhow::Result<BusUnderTest> {
        match args.bus {
            BusKind::KafkaMock => BusUnderTest::kafka_mock(&args.kafka_options),
            BusKind::SnsSqs => BusUnderTest::sns_sqs().await,
        }
    }

    fn kafka_mock(client_options: &[(String, String)]) -> anyhow::Result<BusUnderTest> {
        let mock = MockCluster::new(3)?;
        mock.create_topic(bus::kafka::DEFAULT_TOPIC, 6, 3)?;
        let mut config = bus::kafka::KafkaConfig::new(&mock.bootstrap_servers());
        config.partitions = 6;
        config.client_options = client_options.to_vec();
        let kafka = bus::kafka::KafkaBus::connect(config).context("connect to the mock cluster")?;
        Ok(BusUnderTest {
            bus: Arc::new(kafka),
            _mock_cluster: Some(mock),
        })
    }

    async fn sns_sqs() -> anyhow::Result<BusUnderTest> {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let config = bus::sqs::SqsConfig::from_url(&format!(
            "sns+sqs://{}?topic=lag-{tag}&queue_prefix=l{tag}-&wait_seconds=20",
            testkit::moto_endpoint()
        ))
        .context("the SNS/SQS bus URL")?;
        let sqs = bus::sqs::SqsBus::connect(config)
            .await
            .context("connect to SNS/SQS")?;
        sqs.setup(&["read-model"])
            .await
            .context("set up the SNS topic and SQS queue")?;
        Ok(BusUnderTest {
            bus: Arc::new(sqs),
            _mock_cluster: None,
        })
    }
}

/// The `bench` category and `count` published products in it; their ids.
async fn create_products(
    commands: &CommandService,
    count: usize,
) -> anyhow::Result<Vec<uuid::Uuid>> {
    let metadata = EventMetadata::default();
    commands
        .create_category(
            CreateCategory::try_from(CategoryCreated {
                slug: "bench".into(),
                name: "Bench".into(),
                parent: None,
            })?,
            metadata.clone(),
        )
        .await?;
    let products = (0..count)
        .map(|index| {
            CreateProduct::try_from(ProductCreated {
                sku: format!("LAG-{index}"),
                name: format!("Lag product {index}"),
                description: String::new(),
                category: "bench".into(),
                brand: None,
                price_cents: 1000,
                currency: "USD".into(),
                stock: 10,
                status: ProductStatus::Published,
                attributes: Default::default(),
                images: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, ValueError>>()?;
    Ok(commands
        .create_products(products, metadata)
        .await?
        .into_iter()
        .map(|accepted| accepted.id)
        .collect())
}

/// Measuring starts only once the projector follows the bus (a consumer group join takes
/// seconds): every event written so far must have been applied.
async fn wait_until_caught_up(
    projector: &Projector,
    store: &dyn events::store::EventStore,
) -> anyhow::Result<()> {
    let created_up_to = store.head().await.context("read the store's head")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while projector.status().position < created_up_to {
        anyhow::ensure!(Instant::now() < deadline, "the projector never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Sends `warm_up + measured` price changes to random products at `rate` per second (an open
/// loop: each command is sent on its tick, answered or not); the position of each answered
/// command after the warm-up, with when it was answered.
async fn send_price_changes(
    commands: &Arc<CommandService>,
    ids: &[uuid::Uuid],
    rate: u64,
    warm_up: usize,
    measured: usize,
) -> anyhow::Result<Vec<(u64, Instant)>> {
    let total = measured + warm_up;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let answered_at: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::with_capacity(total);
    for index in 0..total {
        ticker.tick().await;
        let (id, price) = {
            let mut random = rand::thread_rng();
            (
                ids[random.gen_range(0..ids.len())],
                random.gen_range(100..100_000),
            )
        };
        let command = ProductCommand::ChangePrice(ChangePrice {
            price_cents: PriceCents::parse(price)?,
            currency: Currency::parse("USD")?,
        });
        let commands = commands.clone();
        let answered_at = answered_at.clone();
        sent.push(tokio::spawn(async move {
            let metadata = EventMetadata::default();
            if let Ok(accepted) = commands.execute(id, command, None, metadata).await {
                if index >= warm_up {
                    answered_at.lock().push((accepted.position, Instant::now()));
                }
            }
        }));
    }
    for task in sent {
        task.await?;
    }
    let answered = answered_at.lock().clone();
    Ok(answered)
}

/// Waits (up to five minutes) until the projection applied every answered position.
async fn wait_until_applied(timed: &Timed, answered: &[(u64, Instant)]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let missing = {
            let applied = timed.applied_at.lock();
            answered
                .iter()
                .filter(|(position, _)| !applied.contains_key(position))
                .count()
        };
        if missing == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{missing} commands never reached the projection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// From each command's answer to its event applied, in microseconds.
fn lags(timed: &Timed, answered: &[(u64, Instant)]) -> anyhow::Result<Histogram<u64>> {
    let mut lags = histogram();
    let applied = timed.applied_at.lock();
    for (position, answered) in answered {
        let applied = applied.get(position).context("applied")?;
        let lag = applied.saturating_duration_since(*answered);
        lags.record(lag.as_micros().max(1) as u64)?;
    }
    Ok(lags)
}
