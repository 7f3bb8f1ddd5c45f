//! The commands: what an admin asks, imperative and made of value types, so a command that
//! exists has already passed API.md's field rules. Which events it produces (or why it is
//! refused) is the aggregate's decision ([`crate::aggregate`]), not the request parser's.

use std::collections::BTreeMap;

use events::values::{
    Brand, Currency, Description, Name, PriceCents, Quantity, Reason, SaleQuantity, Sku, Slug,
    StockDelta, Synonyms, ValueError,
};
use events::{AttributeValue, CategoryCreated, ProductCreated, ProductStatus};

/// Add a product to the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateProduct {
    pub sku: Sku,
    pub name: Name,
    pub description: Description,
    pub category: Slug,
    pub brand: Option<Brand>,
    pub price_cents: PriceCents,
    pub currency: Currency,
    pub stock: Quantity,
    pub status: ProductStatus,
    pub attributes: BTreeMap<String, AttributeValue>,
    pub images: Vec<String>,
}

impl TryFrom<ProductCreated> for CreateProduct {
    type Error = ValueError;

    /// A generated product (demo seeding, benchmarks) through the value rules a request's
    /// fields pass; attributes and images are taken as given.
    fn try_from(created: ProductCreated) -> Result<Self, Self::Error> {
        Ok(CreateProduct {
            sku: Sku::parse(&created.sku)?,
            name: Name::parse(&created.name)?,
            description: Description::parse(&created.description)?,
            category: Slug::parse(&created.category)?,
            brand: created.brand.as_deref().map(Brand::parse).transpose()?,
            price_cents: PriceCents::parse(created.price_cents)?,
            currency: Currency::parse(&created.currency)?,
            stock: Quantity::parse(created.stock)?,
            status: created.status,
            attributes: created.attributes,
            images: created.images,
        })
    }
}

/// Change some of a product's descriptive fields; `None` keeps a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeDetails {
    pub name: Option<Name>,
    pub description: Option<Description>,
    pub category: Option<Slug>,
    /// `Some(None)` clears the brand.
    pub brand: Option<Option<Brand>>,
    /// Replaces the whole attribute set.
    pub attributes: Option<BTreeMap<String, AttributeValue>>,
    /// Replaces the whole image list.
    pub images: Option<Vec<String>>,
}

/// Set a product's price.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePrice {
    pub price_cents: PriceCents,
    pub currency: Currency,
}

/// Add units to (or, negative, take them from) a product's stock.
#[derive(Debug, Clone, PartialEq)]
pub struct AdjustStock {
    pub delta: StockDelta,
    pub reason: Option<Reason>,
}

/// Sell units of a product: its stock goes down and its sales up by the quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordSale {
    pub quantity: SaleQuantity,
}

/// Add an uploaded image (already stored as its renditions) to a product's images.
#[derive(Debug, Clone, PartialEq)]
pub struct AddImage {
    pub image: events::AddedImage,
}

/// Take an uploaded image off a product.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoveImage {
    pub image_id: String,
}

/// What an admin asks of an existing product.
#[derive(Debug, Clone, PartialEq)]
pub enum ProductCommand {
    ChangeDetails(ChangeDetails),
    ChangePrice(ChangePrice),
    AdjustStock(AdjustStock),
    RecordSale(RecordSale),
    AddImage(AddImage),
    RemoveImage(RemoveImage),
    Publish,
    Unpublish,
    Archive,
}

impl ProductCommand {
    /// The command's name, for traces and logs.
    pub fn name(&self) -> &'static str {
        match self {
            ProductCommand::ChangeDetails(_) => "ChangeDetails",
            ProductCommand::ChangePrice(_) => "ChangePrice",
            ProductCommand::AdjustStock(_) => "AdjustStock",
            ProductCommand::RecordSale(_) => "RecordSale",
            ProductCommand::AddImage(_) => "AddImage",
            ProductCommand::RemoveImage(_) => "RemoveImage",
            ProductCommand::Publish => "Publish",
            ProductCommand::Unpublish => "Unpublish",
            ProductCommand::Archive => "Archive",
        }
    }
}

/// Add a category; `parent`, when given, must be an existing category.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateCategory {
    pub slug: Slug,
    pub name: Name,
    pub parent: Option<Slug>,
}

impl TryFrom<CategoryCreated> for CreateCategory {
    type Error = ValueError;

    /// A generated category (demo seeding, benchmarks) through the rules a request passes.
    fn try_from(created: CategoryCreated) -> Result<Self, Self::Error> {
        Ok(CreateCategory {
            slug: Slug::parse(&created.slug)?,
            name: Name::parse(&created.name)?,
            parent: created.parent.as_deref().map(Slug::parse).transpose()?,
        })
    }
}

/// Replace the search synonyms with these groups (none clears them).
#[derive(Debug, Clone, PartialEq)]
pub struct SetSynonyms {
    pub synonyms: Synonyms,
}
