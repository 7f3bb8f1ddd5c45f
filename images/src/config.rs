//! `CATALOG_IMAGES`: where image renditions go. Unset, they go under the data directory and the
//! catalog serves them at `/images/{name}`; `s3://bucket[?endpoint=&region=&public_url=]` puts
//! them in an S3 bucket, loaded by shoppers from the bucket's public address (or from
//! `public_url`, a CDN in front of it).

use url::Url;

/// Parsed `CATALOG_IMAGES=s3://bucket[?endpoint=http://host:port&region=&public_url=]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagesConfig {
    pub bucket: String,
    /// An S3-compatible endpoint (moto, MinIO); `None`: AWS's own for the region. With an
    /// endpoint, requests are path-style (`endpoint/bucket/key`).
    pub endpoint: Option<String>,
    pub region: String,
    /// The base address shoppers load files from, without a trailing slash.
    pub public_url: String,
}

impl ImagesConfig {
    /// Reads `CATALOG_IMAGES`; a clear message when it is not a valid `s3://` URL.
    pub fn from_url(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|error| {
            format!(
                "CATALOG_IMAGES must be s3://bucket[?endpoint=…&region=…&public_url=…]: {error}"
            )
        })?;
        if url.scheme() != "s3" {
            return Err(format!(
                "CATALOG_IMAGES must be an s3:// URL (unset, images go under the data directory), not {}://",
                url.scheme()
            ));
        }
        let bucket = url.host_str().unwrap_or_default().to_owned();
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|byte| matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.'));
        if !valid_bucket {
            return Err(format!(
                "CATALOG_IMAGES names bucket {bucket:?}: a bucket name is 3 to 63 lower-case letters, digits, dots and hyphens"
            ));
        }
        let mut endpoint = None;
        let mut region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
        let mut public_url = None;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "endpoint" => {
                    let parsed = Url::parse(&value).map_err(|_| {
                        format!("CATALOG_IMAGES endpoint={value} is not a URL (http://127.0.0.1:5999)")
                    })?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(format!("CATALOG_IMAGES endpoint={value} must be http:// or https://"));
                    }
                    endpoint = Some(value.trim_end_matches('/').to_owned());
                }
                "region" if !value.is_empty() => region = value.into_owned(),
                "public_url" => {
                    let parsed = Url::parse(&value).map_err(|_| {
                        format!("CATALOG_IMAGES public_url={value} is not a URL")
                    })?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(format!("CATALOG_IMAGES public_url={value} must be http:// or https://"));
                    }
                    public_url = Some(value.trim_end_matches('/').to_owned());
                }
                other => {
                    return Err(format!(
                        "CATALOG_IMAGES has unknown option {other}= (known: endpoint, region, public_url)"
                    ))
                }
            }
        }
        let public_url = public_url.unwrap_or_else(|| match &endpoint {
            Some(endpoint) => format!("{endpoint}/{bucket}"),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        });
        Ok(ImagesConfig {
            bucket,
            endpoint,
            region,
            public_url,
        })
    }

    /// The origin (`scheme://host[:port]`) of [`ImagesConfig::public_url`].
    pub fn public_origin(&self) -> String {
        match Url::parse(&self.public_url) {
            Ok(url) => url.origin().ascii_serialization(),
            Err(_) => self.public_url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_url_with_a_local_endpoint_is_path_style_at_that_endpoint() {
        let config = ImagesConfig::from_url(
            "s3://shop-images?endpoint=http://127.0.0.1:5999/&region=eu-west-1",
        )
        .expect("valid");
        assert_eq!(config.bucket, "shop-images");
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:5999"));
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.public_url, "http://127.0.0.1:5999/shop-images");
        assert_eq!(config.public_origin(), "http://127.0.0.1:5999");
    }

    #[test]
    fn without_an_endpoint_the_address_is_the_buckets_own_or_the_cdn_given() {
        let aws = ImagesConfig::from_url("s3://shop-images?region=eu-west-1").expect("valid");
        assert_eq!(
            aws.public_url,
            "https://shop-images.s3.eu-west-1.amazonaws.com"
        );
        let cdn =
            ImagesConfig::from_url("s3://shop-images?public_url=https://cdn.example.com/img/")
                .expect("valid");
        assert_eq!(cdn.public_url, "https://cdn.example.com/img");
        assert_eq!(cdn.public_origin(), "https://cdn.example.com");
    }

    #[test]
    fn a_malformed_url_says_what_is_wrong() {
        for (text, expected) in [
            ("images", "must be s3://"),
            ("file:///tmp/x", "must be an s3:// URL"),
            ("s3://A_B", "bucket"),
            ("s3://shop-images?endpoint=ftp://x", "must be http"),
            ("s3://shop-images?colour=blue", "unknown option colour="),
        ] {
            let error = ImagesConfig::from_url(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
