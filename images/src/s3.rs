//! `S3ImageStore`: renditions as objects in an S3 bucket (aws-sdk-s3), each put with its content
//! type and `Cache-Control: public, max-age=31536000, immutable` (names are content-addressed),
//! loaded by shoppers from the bucket's public address or the CDN in front of it. The bucket
//! must let them read (a bucket policy, or the CDN's origin access); the catalog never deletes.

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::{ImageStore, ImageStoreError, ImagesConfig};

/// The cache lifetime of every object: a year, never revalidated.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// See the module documentation.
pub struct S3ImageStore {
    config: ImagesConfig,
    client: aws_sdk_s3::Client,
}

impl S3ImageStore {
    /// A client for `config`'s bucket; credentials from the usual AWS chain (against a local
    /// endpoint without any, test credentials, as moto and MinIO accept).
    pub async fn connect(config: ImagesConfig) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()));
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                && std::env::var_os("AWS_PROFILE").is_none()
            {
                loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "test",
                    "test",
                    None,
                    None,
                    "catalog-local",
                ));
            }
        }
        let shared = loader.load().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.endpoint.is_some())
            .build();
        S3ImageStore {
            client: aws_sdk_s3::Client::from_conf(s3_config),
            config,
        }
    }

    /// Creates the bucket when it does not exist, with a policy that lets anyone read its
    /// objects (what shoppers' browsers need without a CDN in front): for tests and a local S3.
    pub async fn create_public_bucket(&self) -> Result<(), ImageStoreError> {
        if self.check().await.is_err() {
            self.client
                .create_bucket()
                .bucket(&self.config.bucket)
                .send()
                .await
                .map_err(|error| unavailable("create the bucket", error))?;
        }
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"ShoppersRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}/*"}}]}}"#,
            self.config.bucket
        );
        self.client
            .put_bucket_policy()
            .bucket(&self.config.bucket)
            .policy(policy)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| unavailable("set the bucket's read policy", error))
    }
}

fn unavailable(action: &str, error: impl std::error::Error) -> ImageStoreError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    ImageStoreError::Unavailable(format!("cannot {action}: {message}"))
}

#[async_trait]
impl ImageStore for S3ImageStore {
    async fn put(
        &self,
        name: &str,
        bytes: Bytes,
        content_type: &'static str,
    ) -> Result<(), ImageStoreError> {
        self.client
            .put_object()
            .bucket(&self.config.bucket)
            .key(name)
            .content_type(content_type)
            .cache_control(IMMUTABLE)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|error| unavailable("put an image", error))
    }

    async fn get(&self, name: &str) -> Result<Option<Bytes>, ImageStoreError> {
        let answer = self
            .client
            .get_object()
            .bucket(&self.config.bucket)
            .key(name)
            .send()
            .await;
        let object = match answer {
            Ok(object) => object,
            Err(error) => {
                let missing = error
                    .as_service_error()
                    .is_some_and(|service| service.is_no_such_key());
                if missing {
                    return Ok(None);
                }
                return Err(unavailable("get an image", error));
            }
        };
        let body = object
            .body
            .collect()
            .await
            .map_err(|error| unavailable("read an image", error))?;
        Ok(Some(body.into_bytes()))
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.config.public_url)
    }

    fn foreign_origin(&self) -> Option<String> {
        Some(self.config.public_origin())
    }

    async fn check(&self) -> Result<(), ImageStoreError> {
        self.client
            .head_bucket()
            .bucket(&self.config.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| unavailable(&format!("reach bucket {}", self.config.bucket), error))
    }
}
