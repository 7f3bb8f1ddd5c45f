//! Realistic demo data: a dozen categories, brands and products generated from a seed.

use std::collections::BTreeMap;

use events::{AttributeValue, CategoryCreated, ProductCreated, ProductStatus};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

struct CategorySpec {
    slug: &'static str,
    name: &'static str,
    parent: Option<&'static str>,
    prefix: &'static str,
    brands: &'static [&'static str],
    nouns: &'static [&'static str],
    /// Price range in cents.
    price: (i64, i64),
}

const ADJECTIVES: &[&str] = &[
    "Classic",
    "Compact",
    "Deluxe",
    "Essential",
    "Premium",
    "Pro",
    "Ultra",
    "Smart",
    "Eco",
    "Lightweight",
    "Heavy-Duty",
    "Wireless",
    "Portable",
    "Modern",
    "Vintage",
    "Ergonomic",
];
pub(crate) const COLORS: &[&str] = &[
    "black", "white", "silver", "navy", "red", "green", "grey", "blue", "beige",
];
const MATERIALS: &[&str] = &[
    "steel",
    "aluminium",
    "bamboo",
    "cotton",
    "leather",
    "plastic",
    "oak",
    "glass",
];

const CATEGORIES: &[CategorySpec] = &[
    CategorySpec {
        slug: "electronics",
        name: "Electronics",
        parent: None,
        prefix: "ELEC",
        brands: &["Acme", "Voltix", "Sonora", "Lumen"],
        nouns: &[
            "Charger",
            "Power Bank",
            "Smart Speaker",
            "Webcam",
            "USB Hub",
        ],
        price: (1_500, 40_000),
    },
    CategorySpec {
        slug: "headphones",
        name: "Headphones",
        parent: Some("electronics"),
        prefix: "HEAD",
        brands: &["Sonora", "Acme", "Bassline", "Auralis"],
        nouns: &["Headphones", "Earbuds", "Headset", "Earphones"],
        price: (2_000, 45_000),
    },
    CategorySpec {
        slug: "laptops",
        name: "Laptops",
        parent: Some("electronics"),
        prefix: "LAPT",
        brands: &["Nimbus", "Voltix", "Quanta", "Acme"],
        nouns: &["Laptop", "Notebook", "Ultrabook", "Chromebook"],
        price: (29_900, 299_900),
    },
    CategorySpec {
        slug: "phones",
        name: "Phones",
        parent: Some("electronics"),
        prefix: "PHON",
        brands: &["Orbit", "Nimbus", "Pixelon"],
        nouns: &[
            "Smartphone",
            "Phone Case",
            "Screen Protector",
            "Phone Stand",
        ],
        price: (900, 129_900),
    },
    CategorySpec {
        slug: "kitchen",
        name: "Kitchen",
        parent: None,
        prefix: "KITC",
        brands: &["Cucina", "Brewmaster", "Hearth", "Zesta"],
        nouns: &[
            "Kettle",
            "Toaster",
            "Blender",
            "Chef's Knife",
            "Frying Pan",
            "Coffee Grinder",
        ],
        price: (1_200, 35_000),
    },
    CategorySpec {
        slug: "home",
        name: "Home",
        parent: None,
        prefix: "HOME",
        brands: &["Nordhem", "Casa Bella", "Loft & Co"],
        nouns: &[
            "Table Lamp",
            "Throw Blanket",
            "Cushion",
            "Wall Clock",
            "Vase",
            "Rug",
        ],
        price: (900, 60_000),
    },
    CategorySpec {
        slug: "garden",
        name: "Garden",
        parent: None,
        prefix: "GARD",
        brands: &["Greenfield", "Terra", "Bloom"],
        nouns: &[
            "Garden Hose",
            "Pruning Shears",
            "Planter",
            "Watering Can",
            "Lawn Mower",
        ],
        price: (700, 90_000),
    },
    CategorySpec {
        slug: "sports",
        name: "Sports",
        parent: None,
        prefix: "SPRT",
        brands: &["Stride", "Peakform", "Velo"],
        nouns: &[
            "Yoga Mat",
            "Dumbbell Set",
            "Running Shoes",
            "Water Bottle",
            "Jump Rope",
        ],
        price: (800, 25_000),
    },
    CategorySpec {
        slug: "outdoor",
        name: "Outdoor",
        parent: Some("sports"),
        prefix: "OUTD",
        brands: &["Trailhead", "Summit", "Northwind"],
        nouns: &[
            "Tent",
            "Sleeping Bag",
            "Backpack",
            "Headlamp",
            "Camping Stove",
        ],
        price: (1_500, 70_000),
    },
    CategorySpec {
        slug: "toys",
        name: "Toys",
        parent: None,
        prefix: "TOYS",
        brands: &["Playwell", "Brickworks", "Tinker"],
        nouns: &["Building Set", "Puzzle", "Plush Bear", "Board Game", "Kite"],
        price: (500, 15_000),
    },
    CategorySpec {
        slug: "books",
        name: "Books",
        parent: None,
        prefix: "BOOK",
        brands: &["Inkwell Press", "Northbook", "Paperlane"],
        nouns: &["Cookbook", "Novel", "Field Guide", "Atlas", "Notebook"],
        price: (600, 6_000),
    },
    CategorySpec {
        slug: "beauty",
        name: "Beauty",
        parent: None,
        prefix: "BEAU",
        brands: &["Lumiere", "Velvet", "Aqualis"],
        nouns: &["Face Cream", "Shampoo", "Hair Dryer", "Perfume", "Lip Balm"],
        price: (400, 20_000),
    },
];

/// The demo categories, parents first.
pub fn categories() -> Vec<CategoryCreated> {
    CATEGORIES
        .iter()
        .map(|spec| CategoryCreated {
            slug: spec.slug.to_owned(),
            name: spec.name.to_owned(),
            parent: spec.parent.map(str::to_owned),
        })
        .collect()
}

/// Generates `count` products from `seed`. SKUs embed the seed, so runs with different seeds
/// never collide.
pub fn products(seed: u64, count: usize) -> Vec<ProductCreated> {
    let mut rng = StdRng::seed_from_u64(seed);
    let run = format!("{:04X}", seed % 0x1_0000);
    (0..count)
        .map(|index| product(&mut rng, &run, index))
        .collect()
}

/// How many units of each of `products` have sold, from `seed`: most products sell a little,
/// a few sell a lot (a long tail), never more than their stock.
pub fn sales(seed: u64, products: &[ProductCreated]) -> Vec<i64> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5a1e5);
    products
        .iter()
        .map(|product| {
            if rng.gen_bool(0.35) {
                return 0;
            }
            // A Pareto-like tail: u^-1.6 for u in (0, 1].
            let u: f64 = rng.gen_range(0.02..1.0);
            let units = (u.powf(-1.6)).floor() as i64;
            units.min(product.stock)
        })
        .collect()
}

fn pick<'a>(rng: &mut StdRng, items: &'a [&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or("")
}

fn product(rng: &mut StdRng, run: &str, index: usize) -> ProductCreated {
    let spec = &CATEGORIES[index % CATEGORIES.len()];
    let brand = pick(rng, spec.brands);
    let noun = pick(rng, spec.nouns);
    let adjective = pick(rng, ADJECTIVES);
    let color = pick(rng, COLORS);
    let material = pick(rng, MATERIALS);
    let model = format!(
        "{}{}",
        (b'A' + rng.gen_range(0..26u8)) as char,
        rng.gen_range(1..100)
    );
    let name = format!("{brand} {adjective} {noun} {model}");
    let price = rng.gen_range(spec.price.0..=spec.price.1);
    // Prices end in 99 like real shelves.
    let price_cents = (price / 100) * 100 + 99;
    let stock = if rng.gen_bool(0.1) {
        0
    } else {
        rng.gen_range(1..250)
    };
    let status = if rng.gen_bool(0.9) {
        ProductStatus::Published
    } else {
        ProductStatus::Draft
    };
    let sku = format!("{}-{run}-{index:06}", spec.prefix);
    let mut attributes = BTreeMap::new();
    attributes.insert("color".to_owned(), AttributeValue::Text(color.to_owned()));
    attributes.insert(
        "material".to_owned(),
        AttributeValue::Text(material.to_owned()),
    );
    attributes.insert(
        "weight_g".to_owned(),
        AttributeValue::Number(rng.gen_range(50..5000).into()),
    );
    attributes.insert(
        "gift_wrap".to_owned(),
        AttributeValue::Bool(rng.gen_bool(0.3)),
    );
    ProductCreated {
        description: format!(
            "The {name} is a {adjective_lower} {noun_lower} by {brand} in {color} {material}. \
             Built for everyday use, backed by a two-year warranty.",
            adjective_lower = adjective.to_lowercase(),
            noun_lower = noun.to_lowercase(),
        ),
        // No made-up addresses of another site: the storefront would try to load them (and
        // its Content-Security-Policy refuse them). Seeding gives each product the picture
        // of its colour (`crate::demo_pictures`).
        images: Vec::new(),
        sku,
        name,
        category: spec.slug.to_owned(),
        brand: Some(brand.to_owned()),
        price_cents,
        currency: "USD".to_owned(),
        stock,
        status,
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_products_pass_the_api_validation() {
        for product in products(7, 500) {
            let body = serde_json::json!({
                "sku": product.sku, "name": product.name, "description": product.description,
                "category": product.category, "brand": product.brand,
                "price_cents": product.price_cents, "currency": product.currency,
                "stock": product.stock, "status": product.status, "attributes": product.attributes,
                "images": product.images,
            });
            if let Err(errors) = command_api::validation::new_product(&body) {
                panic!("demo product {} is invalid: {errors:?}", product.sku);
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_catalog_and_skus_are_unique() {
        assert_eq!(products(1, 50), products(1, 50));
        let skus: std::collections::HashSet<String> =
            products(1, 3000).into_iter().map(|p| p.sku).collect();
        assert_eq!(skus.len(), 3000);
    }
}
