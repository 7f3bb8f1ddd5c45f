//! The pure step every product view shares: what one event does to a product.

use events::{CatalogEvent, Envelope, ProductCreated, ProductDetailsChanged, ProductStatus};

use super::view::ProductView;
use crate::Applied;

/// What one event does to a product view: the pure step every read model shares.
pub enum Evolved {
    /// The view after the event.
    Changed(Box<ProductView>),
    /// Nothing changed: a duplicate, or a gap to repair first.
    Unchanged(Applied),
}

/// Applies `event` (of `envelope`) to `current`, the view's product at its version, if any.
///
/// A version at or below the view's is a duplicate; one more than a version ahead is a gap
/// (the runner applies the missing versions first); version 1 must be `ProductCreated`.
pub fn evolve(current: Option<&ProductView>, envelope: &Envelope, event: CatalogEvent) -> Evolved {
    let applied_version = current.map_or(0, |view| view.version);
    if current.is_some() && envelope.aggregate_version <= applied_version {
        return Evolved::Unchanged(Applied::Duplicate);
    }
    if envelope.aggregate_version > applied_version + 1 {
        return Evolved::Unchanged(Applied::Gap { applied_version });
    }
    let Some(current) = current else {
        let CatalogEvent::ProductCreated(created) = event else {
            tracing::warn!(product_id = %envelope.aggregate_id, event_type = event.event_type(), "version 1 of a product is not ProductCreated");
            return Evolved::Unchanged(Applied::Duplicate);
        };
        return Evolved::Changed(Box::new(created_view(envelope, created)));
    };
    let mut product = ProductView::clone(current);
    match event {
        // Not a later version of a product: the projections route the others away first.
        CatalogEvent::ProductCreated(_)
        | CatalogEvent::CategoryCreated(_)
        | CatalogEvent::SynonymsChanged(_) => return Evolved::Unchanged(Applied::Duplicate),
        CatalogEvent::ProductDetailsChanged(changed) => change_details(&mut product, changed),
        CatalogEvent::PriceChanged(price) => {
            product.price_cents = price.price_cents;
            product.currency = price.currency;
        }
        CatalogEvent::StockAdjusted(adjusted) => product.stock += adjusted.delta,
        CatalogEvent::SaleRecorded(sale) => {
            product.stock -= sale.quantity;
            product.sales += sale.quantity;
        }
        CatalogEvent::ProductPublished(_) => product.status = ProductStatus::Published,
        CatalogEvent::ProductUnpublished(_) => product.status = ProductStatus::Draft,
        CatalogEvent::ProductArchived(_) => product.status = ProductStatus::Archived,
        CatalogEvent::ImagesAdded(added) => {
            for image in added.images {
                if !product.images.contains(&image.url) {
                    product.images.push(image.url);
                }
            }
        }
        CatalogEvent::ImageRemoved(removed) => product.images.retain(|url| *url != removed.url),
    }
    product.version = envelope.aggregate_version;
    product.updated_at = envelope.occurred_at;
    Evolved::Changed(Box::new(product))
}

/// The view of a product at version 1.
fn created_view(envelope: &Envelope, created: ProductCreated) -> ProductView {
    ProductView {
        id: envelope.aggregate_id,
        sku: created.sku,
        name: created.name,
        description: created.description,
        category: created.category,
        brand: created.brand,
        price_cents: created.price_cents,
        currency: created.currency,
        stock: created.stock,
        sales: 0,
        status: created.status,
        attributes: created.attributes,
        images: created.images,
        version: envelope.aggregate_version,
        created_at: envelope.occurred_at,
        updated_at: envelope.occurred_at,
        encoded: Default::default(),
    }
}

/// The fields a `ProductDetailsChanged` names replace the view's; the others stay.
fn change_details(product: &mut ProductView, changed: ProductDetailsChanged) {
    if let Some(name) = changed.name {
        product.name = name;
    }
    if let Some(description) = changed.description {
        product.description = description;
    }
    if let Some(category) = changed.category {
        product.category = category;
    }
    if let Some(brand) = changed.brand {
        product.brand = brand;
    }
    if let Some(attributes) = changed.attributes {
        product.attributes = attributes;
    }
    if let Some(images) = changed.images {
        product.images = images;
    }
}

/// Whether a category event at `envelope`'s version is the next one for a view that holds
/// `applied_version` of it: `None` when it is, else what to answer (a duplicate, or a gap).
pub fn category_out_of_order(applied_version: u64, envelope: &Envelope) -> Option<Applied> {
    if envelope.aggregate_version <= applied_version {
        return Some(Applied::Duplicate);
    }
    if envelope.aggregate_version > applied_version + 1 {
        return Some(Applied::Gap { applied_version });
    }
    None
}

/// A rebuild's batch, decoded: the product events in order, and the categories it creates
/// (id, version, event). Search settings are not a read model's.
pub(crate) struct RebuildBatch<'a> {
    pub products: Vec<(&'a Envelope, CatalogEvent)>,
    pub categories: Vec<(uuid::Uuid, u64, events::CategoryCreated)>,
}

impl<'a> RebuildBatch<'a> {
    pub fn decode(envelopes: &'a [Envelope]) -> Result<Self, crate::ProjectionError> {
        let mut batch = RebuildBatch {
            products: Vec::with_capacity(envelopes.len()),
            categories: Vec::new(),
        };
        for envelope in envelopes {
            match crate::decode_event(envelope)? {
                Some(CatalogEvent::CategoryCreated(created)) => {
                    if category_out_of_order(0, envelope).is_none() {
                        batch.categories.push((
                            envelope.aggregate_id,
                            envelope.aggregate_version,
                            created,
                        ));
                    }
                }
                Some(CatalogEvent::SynonymsChanged(_)) | None => {}
                Some(event) => batch.products.push((envelope, event)),
            }
        }
        Ok(batch)
    }

    /// The products the batch touches, each once.
    pub fn product_ids(&self) -> Vec<uuid::Uuid> {
        let mut ids: Vec<uuid::Uuid> = self
            .products
            .iter()
            .map(|(envelope, _)| envelope.aggregate_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// [`evolve`] in a rebuild, which reads the store in order: the product after the event
/// (`None` when it changed nothing), or the refusal of an event that comes after a gap.
pub(crate) fn evolve_in_order(
    current: Option<&ProductView>,
    envelope: &Envelope,
    event: CatalogEvent,
) -> Result<Option<ProductView>, crate::ProjectionError> {
    match evolve(current, envelope, event) {
        Evolved::Changed(product) => Ok(Some(*product)),
        Evolved::Unchanged(Applied::Gap { applied_version }) => {
            Err(crate::ProjectionError::Invalid {
                position: envelope.position,
                message: format!(
                "the rebuild holds version {applied_version} of the product, and this event is \
                 version {}",
                envelope.aggregate_version
            ),
            })
        }
        Evolved::Unchanged(_) => Ok(None),
    }
}
