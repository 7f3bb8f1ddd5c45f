//! The generated catalog of the relevance set and its judged queries.
//!
//! Every product is built from what it *is* — a kind (kettle, coffee grinder, descaler for
//! kettles…), a brand, an adjective and a series — and every judgment is derived from that
//! knowledge alone, never from what an engine returns (a judgment read off the results could
//! not fail). Nothing is random: the same catalog and queries come out of every run.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{TimeZone, Utc};
use events::ProductStatus;
use projectors::read_model::ProductView;
use uuid::Uuid;

/// A kind of product. `target`: for an accessory, the kind it is for (its description names
/// that kind several times, its name never does — the case field boosts exist for).
pub struct Kind {
    /// As in product names ("Coffee Grinder", "Running Shoes").
    pub name: &'static str,
    pub singular: &'static str,
    pub plural: &'static str,
    pub category: &'static str,
    pub code: &'static str,
    pub feature: &'static str,
    pub target: Option<&'static str>,
    /// For a sibling kind ("pepper grinder" beside "coffee grinder"): the kind whose brands,
    /// adjectives and series it shares, so that only the kind's first word tells them apart.
    pub like: Option<&'static str>,
}

const fn kind(
    name: &'static str,
    singular: &'static str,
    plural: &'static str,
    category: &'static str,
    code: &'static str,
    feature: &'static str,
) -> Kind {
    Kind {
        name,
        singular,
        plural,
        category,
        code,
        feature,
        target: None,
        like: None,
    }
}

const fn sibling(
    name: &'static str,
    singular: &'static str,
    plural: &'static str,
    category: &'static str,
    code: &'static str,
    feature: &'static str,
    like: &'static str,
) -> Kind {
    Kind {
        name,
        singular,
        plural,
        category,
        code,
        feature,
        target: None,
        like: Some(like),
    }
}

const fn accessory(
    name: &'static str,
    singular: &'static str,
    plural: &'static str,
    code: &'static str,
    feature: &'static str,
    target: &'static str,
) -> Kind {
    Kind {
        name,
        singular,
        plural,
        category: "accessories",
        code,
        feature,
        target: Some(target),
        like: None,
    }
}

pub const KINDS: &[Kind] = &[
    kind(
        "Kettle",
        "kettle",
        "kettles",
        "home-kitchen",
        "KET",
        "Boils 1.7 litres in three minutes and switches off by itself",
    ),
    kind(
        "Toaster",
        "toaster",
        "toasters",
        "home-kitchen",
        "TOA",
        "Two wide slots, seven browning levels and a crumb tray that slides out",
    ),
    kind(
        "Blender",
        "blender",
        "blenders",
        "home-kitchen",
        "BLE",
        "A 1200 W motor crushes ice and frozen fruit in seconds",
    ),
    kind(
        "Laptop",
        "laptop",
        "laptops",
        "electronics",
        "LAP",
        "Fourteen inch screen, sixteen hours on one charge",
    ),
    kind(
        "Monitor",
        "monitor",
        "monitors",
        "electronics",
        "MON",
        "A 27 inch panel with thin bezels and a height adjustable stand",
    ),
    kind(
        "Television",
        "television",
        "televisions",
        "electronics",
        "TEL",
        "A 55 inch 4K panel with HDR and a quiet cooling fan",
    ),
    kind(
        "Sofa",
        "sofa",
        "sofas",
        "furniture",
        "SOF",
        "Three seats, feather cushions and removable washable covers",
    ),
    kind(
        "Backpack",
        "backpack",
        "backpacks",
        "bags",
        "BAC",
        "Twenty litres, padded straps and a pocket that opens flat at airports",
    ),
    kind(
        "Jacket",
        "jacket",
        "jackets",
        "clothing",
        "JAC",
        "Windproof shell with taped seams and a hood that rolls away",
    ),
    kind(
        "Hoodie",
        "hoodie",
        "hoodies",
        "clothing",
        "HOO",
        "Brushed cotton fleece, kangaroo pocket and ribbed cuffs",
    ),
    kind(
        "Mattress",
        "mattress",
        "mattresses",
        "furniture",
        "MAT",
        "Pocket springs under two layers of memory foam",
    ),
    kind(
        "Umbrella",
        "umbrella",
        "umbrellas",
        "accessories-rain",
        "UMB",
        "Opens at the press of a button and survives gusts of wind",
    ),
    kind(
        "Earbuds",
        "earbud",
        "earbuds",
        "electronics",
        "EAR",
        "Active noise cancelling and a charging case the size of a coin purse",
    ),
    kind(
        "Chef Knife",
        "chef knife",
        "chef knives",
        "home-kitchen",
        "KNI",
        "Forged from one piece of Japanese steel, balanced at the bolster",
    ),
    kind(
        "Sneakers",
        "sneaker",
        "sneakers",
        "shoes",
        "SNE",
        "Knitted upper, cushioned sole and laces that stay tied",
    ),
    kind(
        "Tent",
        "tent",
        "tents",
        "sports-outdoor",
        "TEN",
        "Sleeps two, pitches in five minutes, packs down to a bottle",
    ),
    kind(
        "Coffee Grinder",
        "coffee grinder",
        "coffee grinders",
        "home-kitchen",
        "CGR",
        "Conical steel burrs with forty grind settings from espresso to cold brew",
    ),
    kind(
        "Office Chair",
        "office chair",
        "office chairs",
        "furniture",
        "OCH",
        "Mesh back, adjustable lumbar support and armrests that move four ways",
    ),
    kind(
        "Water Bottle",
        "water bottle",
        "water bottles",
        "sports-outdoor",
        "WBO",
        "Double walled steel keeps drinks cold for a whole day",
    ),
    kind(
        "Electric Toothbrush",
        "electric toothbrush",
        "electric toothbrushes",
        "beauty",
        "ETO",
        "Sonic motor, pressure sensor and a two minute timer",
    ),
    kind(
        "Gaming Mouse",
        "gaming mouse",
        "gaming mice",
        "electronics",
        "GMO",
        "A 26000 DPI sensor, six programmable buttons and light clicks",
    ),
    kind(
        "Mechanical Keyboard",
        "mechanical keyboard",
        "mechanical keyboards",
        "electronics",
        "MKE",
        "Hot swappable switches, aluminium frame and per key lighting",
    ),
    kind(
        "Garden Hose",
        "garden hose",
        "garden hoses",
        "garden",
        "GHO",
        "Fifteen metres that do not kink, with brass fittings",
    ),
    kind(
        "Sleeping Bag",
        "sleeping bag",
        "sleeping bags",
        "sports-outdoor",
        "SBA",
        "Rated to minus five degrees and packs into its own sack",
    ),
    kind(
        "Frying Pan",
        "frying pan",
        "frying pans",
        "home-kitchen",
        "FPA",
        "Heavy aluminium base with a ceramic coating that needs little oil",
    ),
    kind(
        "Robot Vacuum",
        "robot vacuum",
        "robot vacuums",
        "home-kitchen",
        "RVA",
        "Maps every room with lidar and empties itself into its dock",
    ),
    kind(
        "Wireless Headphones",
        "wireless headphone",
        "wireless headphones",
        "headphones",
        "WHE",
        "Over ear cups, forty hours of battery and active noise cancelling",
    ),
    kind(
        "Espresso Machine",
        "espresso machine",
        "espresso machines",
        "home-kitchen",
        "EMA",
        "Fifteen bar pump, steam wand and a heated cup tray",
    ),
    kind(
        "Running Shoes",
        "running shoe",
        "running shoes",
        "shoes",
        "RSH",
        "Responsive foam midsole and a breathable mesh upper",
    ),
    kind(
        "Table Lamp",
        "table lamp",
        "table lamps",
        "lighting",
        "TLA",
        "Warm dimmable light and a linen shade",
    ),
    kind(
        "Standing Desk",
        "standing desk",
        "standing desks",
        "furniture",
        "SDE",
        "Dual motors lift it from sitting to standing height in twenty seconds",
    ),
    kind(
        "Yoga Mat",
        "yoga mat",
        "yoga mats",
        "sports-outdoor",
        "YMA",
        "Six millimetres of grippy natural rubber",
    ),
    sibling(
        "Pepper Grinder",
        "pepper grinder",
        "pepper grinders",
        "home-kitchen",
        "PGR",
        "Ceramic burrs set from fine to coarse with a twist of the crown",
        "coffee grinder",
    ),
    sibling(
        "Gaming Chair",
        "gaming chair",
        "gaming chairs",
        "furniture",
        "GCH",
        "Racing style bucket seat that reclines to 155 degrees",
        "office chair",
    ),
    sibling(
        "Floor Lamp",
        "floor lamp",
        "floor lamps",
        "lighting",
        "FLA",
        "An arc that reaches over the sofa on a marble base",
        "table lamp",
    ),
    sibling(
        "Hiking Shoes",
        "hiking shoe",
        "hiking shoes",
        "shoes",
        "HSH",
        "Waterproof membrane and a lugged sole for loose ground",
        "running shoes",
    ),
    sibling(
        "Studio Headphones",
        "studio headphone",
        "studio headphones",
        "headphones",
        "SHE",
        "Flat response drivers and a coiled detachable lead",
        "wireless headphones",
    ),
    sibling(
        "Bread Machine",
        "bread machine",
        "bread machines",
        "home-kitchen",
        "BMA",
        "Twelve programmes and a delay timer for fresh loaves at breakfast",
        "espresso machine",
    ),
    sibling(
        "Cordless Vacuum",
        "cordless vacuum",
        "cordless vacuums",
        "home-kitchen",
        "CVA",
        "Sixty minutes per charge and a wand that turns into a handheld",
        "robot vacuum",
    ),
    sibling(
        "Bamboo Toothbrush",
        "bamboo toothbrush",
        "bamboo toothbrushes",
        "beauty",
        "BTO",
        "Compostable handle and charcoal infused bristles",
        "electric toothbrush",
    ),
    sibling(
        "Wireless Keyboard",
        "wireless keyboard",
        "wireless keyboards",
        "electronics",
        "WKE",
        "Low profile scissor keys that pair with three devices",
        "mechanical keyboard",
    ),
    sibling(
        "Duffel Bag",
        "duffel bag",
        "duffel bags",
        "bags",
        "DBA",
        "Water resistant canvas with a shoe compartment at one end",
        "sleeping bag",
    ),
    sibling(
        "Grill Pan",
        "grill pan",
        "grill pans",
        "home-kitchen",
        "GPA",
        "Cast iron ridges that leave sear marks",
        "frying pan",
    ),
    sibling(
        "Writing Desk",
        "writing desk",
        "writing desks",
        "furniture",
        "WDE",
        "Solid oak top with a cable tray and one shallow drawer",
        "standing desk",
    ),
    sibling(
        "Beach Umbrella",
        "beach umbrella",
        "beach umbrellas",
        "sports-outdoor",
        "BUM",
        "Tilting canopy with UV protection and a sand anchor",
        "umbrella",
    ),
    accessory(
        "Limescale Descaler",
        "limescale descaler",
        "limescale descalers",
        "DES",
        "Citric acid sachets that dissolve limescale overnight",
        "kettle",
    ),
    accessory(
        "Replacement Earpads",
        "replacement earpad",
        "replacement earpads",
        "EPA",
        "Memory foam cushions in soft protein leather",
        "wireless headphones",
    ),
    accessory(
        "Audio Cable",
        "audio cable",
        "audio cables",
        "AUD",
        "Braided 3.5 mm cable with gold plated plugs and an inline microphone",
        "wireless headphones",
    ),
    accessory(
        "Padded Sleeve",
        "padded sleeve",
        "padded sleeves",
        "PSL",
        "Neoprene with a fleece lining and a zip that does not scratch",
        "laptop",
    ),
    accessory(
        "Burr Cleaner",
        "burr cleaner",
        "burr cleaners",
        "BCL",
        "Food safe grain tablets that lift old oils from the burrs",
        "coffee grinder",
    ),
    accessory(
        "Seat Cushion",
        "seat cushion",
        "seat cushions",
        "SCU",
        "Gel and memory foam that takes pressure off the lower back",
        "office chair",
    ),
    accessory(
        "Cleaning Tablets",
        "cleaning tablet",
        "cleaning tablets",
        "CTA",
        "Effervescent tablets that remove stains and odours without scrubbing",
        "water bottle",
    ),
    accessory(
        "Brush Heads",
        "brush head",
        "brush heads",
        "BHE",
        "A pack of four with soft tapered bristles",
        "electric toothbrush",
    ),
    accessory(
        "Wrist Rest",
        "wrist rest",
        "wrist rests",
        "WRE",
        "Cooling gel under a smooth lycra cover",
        "gaming mouse",
    ),
    accessory(
        "Keycap Set",
        "keycap set",
        "keycap sets",
        "KEY",
        "Double shot PBT keycaps in a cherry profile",
        "mechanical keyboard",
    ),
    accessory(
        "Spray Nozzle",
        "spray nozzle",
        "spray nozzles",
        "SNO",
        "Eight patterns from mist to jet and a thumb control lever",
        "garden hose",
    ),
    accessory(
        "Glass Lid",
        "glass lid",
        "glass lids",
        "GLI",
        "Tempered glass with a steam vent and a cool touch knob",
        "frying pan",
    ),
    accessory(
        "Gel Insoles",
        "gel insole",
        "gel insoles",
        "GIN",
        "Shock absorbing heel pads and arch support, cut to size",
        "running shoes",
    ),
    accessory(
        "Wall Mount",
        "wall mount",
        "wall mounts",
        "WMO",
        "Tilts fifteen degrees and holds up to forty kilograms",
        "television",
    ),
    accessory(
        "Knitted Throw",
        "knitted throw",
        "knitted throws",
        "KTH",
        "Chunky cotton knit that drapes over the back cushions",
        "sofa",
    ),
];

/// `(display name, SKU code)`. Four carry accents, one of them two words ("Café Crème").
pub const BRANDS: &[(&str, &str)] = &[
    ("Voltix", "VOL"),
    ("Korvo", "KOR"),
    ("Nimbus", "NIM"),
    ("Aurora", "AUR"),
    ("Halden", "HAL"),
    ("Brisa", "BRI"),
    ("Tamarack", "TAM"),
    ("Quillon", "QUI"),
    ("Müller", "MUL"),
    ("Ostra", "OST"),
    ("Vireo", "VIR"),
    ("Kestrel", "KES"),
    ("Élan", "ELA"),
    ("Marlow", "MAR"),
    ("Pinecrest", "PIN"),
    ("Café Crème", "CAF"),
    ("Solace", "SOL"),
    ("Fenwick", "FEN"),
    ("Noëlle", "NOE"),
    ("Dravik", "DRA"),
];

/// Adjectives of five letters or more, so that each may carry a typo.
pub const ADJECTIVES: &[&str] = &[
    "Compact",
    "Classic",
    "Premium",
    "Deluxe",
    "Portable",
    "Quiet",
    "Lightweight",
    "Ergonomic",
    "Foldable",
    "Vintage",
    "Modern",
    "Rugged",
    "Smart",
];

pub const SERIES: &[&str] = &[
    "Aero", "Nova", "Pulse", "Orbit", "Zenith", "Vela", "Strata", "Halo", "Terra", "Vista",
    "Prism", "Echo",
];

/// Products per kind: 60 kinds × 44 = 2,640 products.
pub const PER_KIND: usize = 44;

/// What a product is, as the generator made it.
#[derive(Debug, Clone)]
pub struct Facts {
    pub kind: usize,
    pub brand: usize,
    pub adjective: usize,
    pub published: bool,
}

pub struct Catalog {
    pub products: Vec<ProductView>,
    pub facts: Vec<Facts>,
}

/// The position of a kind by its singular (or plural).
pub fn kind_index(singular: &str) -> usize {
    KINDS
        .iter()
        .position(|kind| kind.singular == singular || kind.plural == singular)
        .unwrap_or_else(|| panic!("no kind {singular}"))
}

/// The kind an accessory's attributes come from: its target's, so that a brand's descalers sit
/// beside its kettles (the case where name and description compete).
fn attribute_kind(kind: usize) -> usize {
    KINDS[kind]
        .target
        .or(KINDS[kind].like)
        .map_or(kind, kind_index)
}

/// The four brands of a kind (distinct: 5 × k mod 20).
pub fn kind_brands(kind: usize) -> [usize; 4] {
    let base = attribute_kind(kind) * 3;
    [0, 1, 2, 3].map(|k| (base + k * 5) % BRANDS.len())
}

/// The four adjectives of a kind.
pub fn kind_adjectives(kind: usize) -> [usize; 4] {
    let base = attribute_kind(kind) * 3;
    [0, 1, 2, 3].map(|k| (base + k) % ADJECTIVES.len())
}

pub fn generate() -> Catalog {
    let at = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    let mut products = Vec::new();
    let mut facts = Vec::new();
    let main_kinds = KINDS.iter().filter(|kind| kind.target.is_none()).count();
    for (kind_position, kind) in KINDS.iter().enumerate() {
        let brands = kind_brands(kind_position);
        let adjectives = kind_adjectives(kind_position);
        let series_base = attribute_kind(kind_position);
        for item in 0..PER_KIND {
            let brand = brands[item % 4];
            let adjective = adjectives[(item / 4) % 4];
            let series = SERIES[(item / 16 + series_base) % SERIES.len()];
            let (brand_name, brand_code) = BRANDS[brand];
            let adjective_name = ADJECTIVES[adjective];
            let name = format!("{brand_name} {adjective_name} {} {series}", kind.name);
            let description = match kind.target {
                // The target named three times, the accessory's own kind never.
                Some(target) => format!(
                    "{}. Made for every {target}: keeps your {target} working like new, \
                     and fits any {target} from {brand_name}.",
                    kind.feature
                ),
                None => {
                    let other = &KINDS[(kind_position + 5 + item % 3) % main_kinds];
                    format!(
                        "{}. {adjective_name} design from {brand_name}, {series} line. \
                         Goes well with our {}.",
                        kind.feature, other.plural
                    )
                }
            };
            // One in 22 is not published: it must never be found (and is never judged).
            let published = item % 22 != 21;
            let index = products.len();
            products.push(ProductView {
                id: Uuid::from_u128(index as u128 + 1),
                sku: format!(
                    "{}-{brand_code}-{:04}",
                    kind.code,
                    kind_position * 100 + item
                ),
                name,
                description,
                category: kind.category.to_owned(),
                brand: Some(brand_name.to_owned()),
                price_cents: 999 + ((index * 7919) % 40_000) as i64,
                currency: "USD".into(),
                stock: ((index * 31) % 17) as i64,
                sales: 0,
                status: if published {
                    ProductStatus::Published
                } else {
                    ProductStatus::Draft
                },
                attributes: BTreeMap::new(),
                images: Vec::new(),
                version: 1,
                created_at: at + chrono::Duration::minutes(index as i64),
                updated_at: at,
                encoded: Default::default(),
            });
            facts.push(Facts {
                kind: kind_position,
                brand,
                adjective,
                published,
            });
        }
    }
    Catalog { products, facts }
}

/// Lower-case and without accents, as the index folds words.
pub fn fold(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'ø' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ñ' => 'n',
            other => other,
        })
        .collect()
}

/// Every folded word of the catalog: typos and extra words are checked against it, so a
/// "typo" is never a real word and a fallback word never matches.
pub fn vocabulary(catalog: &Catalog) -> BTreeSet<String> {
    catalog
        .products
        .iter()
        .flat_map(|product| {
            let text = format!(
                "{} {} {}",
                product.name,
                product.description,
                product.brand.as_deref().unwrap_or("")
            );
            search::words(&fold(&text))
        })
        .collect()
}

/// A judged query.
pub struct Query {
    pub category: &'static str,
    pub text: String,
    /// Product index → grade (3 exact, 2 relevant, 1 marginal); absent = 0.
    pub grades: BTreeMap<usize, u8>,
}

/// What a query asks for, in the generator's own terms.
enum Intent {
    /// One product (a whole name, a SKU): a navigational query. Only that product is judged:
    /// someone who types a SKU or a full name wants it, not its neighbours, and grading the
    /// neighbours 2 would measure the all-words semantics (which rightly hides them) rather
    /// than the ranking.
    Product(usize),
    /// Products of a kind, maybe of one brand or with one adjective: 3 those with every
    /// attribute named, 2 the kind's other products, 1 the accessories made for the kind.
    Kind {
        kind: usize,
        brand: Option<usize>,
        adjective: Option<usize>,
    },
    /// Every product of a brand: 3 each.
    Brand(usize),
}

fn judge(catalog: &Catalog, intent: &Intent) -> BTreeMap<usize, u8> {
    let mut grades = BTreeMap::new();
    for (index, facts) in catalog.facts.iter().enumerate() {
        if !facts.published {
            continue;
        }
        let grade = match *intent {
            Intent::Product(wanted) => u8::from(index == wanted) * 3,
            Intent::Brand(brand) => u8::from(facts.brand == brand) * 3,
            Intent::Kind {
                kind,
                brand,
                adjective,
            } => {
                if facts.kind == kind {
                    let brand_ok = brand.is_none_or(|brand| facts.brand == brand);
                    let adjective_ok =
                        adjective.is_none_or(|adjective| facts.adjective == adjective);
                    if brand_ok && adjective_ok {
                        3
                    } else {
                        2
                    }
                } else if KINDS[facts.kind].target.map(kind_index) == Some(kind) {
                    1
                } else {
                    0
                }
            }
        };
        if grade > 0 {
            grades.insert(index, grade);
        }
    }
    grades
}

/// A typo of `word` (five letters or more): an interior transposition, deletion or doubled
/// letter, whichever first gives a string that is no word of the catalog and no prefix of one
/// (so that only typo tolerance, not prefix matching, can find it).
pub fn typo(word: &str, seed: usize, vocabulary: &BTreeSet<String>) -> String {
    let chars: Vec<char> = word.chars().collect();
    assert!(chars.len() >= 5, "{word} is too short for a typo");
    let middle = chars.len() / 2;
    for attempt in 0..6 {
        let mut typed = chars.clone();
        match (seed + attempt) % 3 {
            0 => typed.swap(middle - 1, middle),
            // A deletion only from six letters up: five letters less one is too short for
            // the one edit the search allows.
            1 if chars.len() >= 6 => {
                typed.remove(middle);
            }
            1 => typed.swap(middle, middle + 1),
            _ => typed.insert(middle, chars[middle]),
        }
        let typed: String = typed.into_iter().collect();
        let folded = fold(&typed);
        let clashes = vocabulary.iter().any(|known| known.starts_with(&folded));
        if typed != word && !clashes {
            return typed;
        }
    }
    panic!("no typo of {word} that is not a word of the catalog");
}

fn lower(text: &str) -> String {
    text.to_lowercase()
}

/// The judged queries: 20 or more per category.
pub fn queries(catalog: &Catalog) -> Vec<Query> {
    let vocabulary = vocabulary(catalog);
    let mains: Vec<usize> = (0..KINDS.len())
        .filter(|kind| KINDS[*kind].target.is_none())
        .collect();
    let two_words: Vec<usize> = mains
        .iter()
        .copied()
        .filter(|kind| {
            let paired = KINDS[*kind].like.is_some()
                || KINDS
                    .iter()
                    .any(|other| other.like == Some(KINDS[*kind].singular));
            paired
                && KINDS[*kind]
                    .singular
                    .split(' ')
                    .next()
                    .is_some_and(|first| first.len() >= 5 && KINDS[*kind].singular.contains(' '))
        })
        .collect();
    let mut out = Vec::new();
    let mut push = |category: &'static str, text: String, intent: Intent| {
        let grades = judge(catalog, &intent);
        assert!(
            !grades.is_empty(),
            "{category} {text:?} has no judged product"
        );
        out.push(Query {
            category,
            text,
            grades,
        });
    };
    let published: Vec<usize> = (0..catalog.products.len())
        .filter(|index| catalog.facts[*index].published)
        .collect();

    // Whole names, as copied from a review or a receipt.
    for step in 0..20 {
        let index = published[(step * 101 + 7) % published.len()];
        push(
            "exact",
            catalog.products[index].name.clone(),
            Intent::Product(index),
        );
    }
    // SKUs, as typed: upper case, lower case, with stray spaces.
    for step in 0..20 {
        let index = published[(step * 97 + 3) % published.len()];
        let sku = &catalog.products[index].sku;
        let text = match step % 3 {
            0 => sku.clone(),
            1 => sku.to_lowercase(),
            _ => format!("  {sku} "),
        };
        push("sku", text, Intent::Product(index));
    }
    // The kind alone, singular (name against description: accessories mention it). Kinds
    // named in the plural ("Earbuds") are the plural category's.
    let named_singular: Vec<usize> = mains
        .iter()
        .copied()
        .filter(|kind| KINDS[*kind].name.to_lowercase() != KINDS[*kind].plural)
        .collect();
    for step in 0..20 {
        let kind = named_singular[(step * 4) % named_singular.len()];
        push(
            "type",
            KINDS[kind].singular.to_owned(),
            Intent::Kind {
                kind,
                brand: None,
                adjective: None,
            },
        );
    }
    // Plurals, and singulars of kinds named in the plural.
    for step in 0..22 {
        let kind = mains[(step * 7 + 1) % mains.len()];
        let named_plural = KINDS[kind].name.to_lowercase() == KINDS[kind].plural;
        let text = if named_plural && step % 2 == 0 {
            KINDS[kind].singular
        } else {
            KINDS[kind].plural
        };
        push(
            "plural",
            text.to_owned(),
            Intent::Kind {
                kind,
                brand: None,
                adjective: None,
            },
        );
    }
    // An irregular plural the stemmer does not know (mouse, mice).
    push(
        "plural",
        "gaming mice".to_owned(),
        Intent::Kind {
            kind: kind_index("gaming mouse"),
            brand: None,
            adjective: None,
        },
    );
    // Brand and kind, both orders.
    for step in 0..20 {
        let kind = mains[(step * 8 + 2) % mains.len()];
        let brand = kind_brands(kind)[step % 4];
        let brand_name = lower(BRANDS[brand].0);
        let text = if step % 4 == 3 {
            format!("{} {brand_name}", KINDS[kind].singular)
        } else {
            format!("{brand_name} {}", KINDS[kind].singular)
        };
        push(
            "brand_type",
            text,
            Intent::Kind {
                kind,
                brand: Some(brand),
                adjective: None,
            },
        );
    }
    // A typo in the first word: the adjective, before the kind.
    for step in 0..20 {
        let kind = mains[(step * 11 + 3) % mains.len()];
        let adjective = kind_adjectives(kind)[step % 4];
        let typed = typo(&lower(ADJECTIVES[adjective]), step, &vocabulary);
        push(
            "typo_first_word",
            format!("{typed} {}", KINDS[kind].singular),
            Intent::Kind {
                kind,
                brand: None,
                adjective: Some(adjective),
            },
        );
    }
    // A typo in the middle word: "compact cofee grinder". The typo is in the word that tells
    // the kind from its sibling (pepper grinder), so the fallback alone cannot find it.
    for step in 0..20 {
        let kind = two_words[(step * 5 + 1) % two_words.len()];
        let adjective = kind_adjectives(kind)[(step + 1) % 4];
        let mut words = KINDS[kind].singular.split(' ');
        let first = words.next().expect("two words");
        let second = words.next().expect("two words");
        let typed = typo(first, step, &vocabulary);
        push(
            "typo_middle_word",
            format!("{} {typed} {second}", lower(ADJECTIVES[adjective])),
            Intent::Kind {
                kind,
                brand: None,
                adjective: Some(adjective),
            },
        );
    }
    // A typo in the last word: the kind itself, alone or after the brand.
    let long_last: Vec<usize> = mains
        .iter()
        .copied()
        .filter(|kind| {
            KINDS[*kind]
                .singular
                .rsplit(' ')
                .next()
                .is_some_and(|last| last.len() >= 5)
        })
        .collect();
    for step in 0..20 {
        let kind = long_last[(step * 7 + 2) % long_last.len()];
        let singular = KINDS[kind].singular;
        let (head, last) = singular.rsplit_once(' ').unwrap_or(("", singular));
        let typed = typo(last, step + 1, &vocabulary);
        let (text, brand) = if step % 2 == 0 {
            let brand = kind_brands(kind)[step % 4];
            let prefix = [lower(BRANDS[brand].0), head.to_owned()].join(" ");
            (format!("{} {typed}", prefix.trim()), Some(brand))
        } else {
            (format!("{head} {typed}").trim().to_owned(), None)
        };
        push(
            "typo_last_word",
            text,
            Intent::Kind {
                kind,
                brand,
                adjective: None,
            },
        );
    }
    // Accents: accented brands typed without accents, and with them.
    let accented: Vec<usize> = (0..BRANDS.len())
        .filter(|brand| BRANDS[*brand].0.to_lowercase() != fold(BRANDS[*brand].0))
        .collect();
    for step in 0..20 {
        let brand = accented[step % accented.len()];
        let kinds_of_brand: Vec<usize> = mains
            .iter()
            .copied()
            .filter(|kind| kind_brands(*kind).contains(&brand))
            .collect();
        let kind = kinds_of_brand[(step / accented.len()) % kinds_of_brand.len()];
        let name = BRANDS[brand].0;
        let (text, intent) = match step % 5 {
            0 => (fold(name), Intent::Brand(brand)),
            1 | 2 => (
                format!("{} {}", fold(name), KINDS[kind].singular),
                Intent::Kind {
                    kind,
                    brand: Some(brand),
                    adjective: None,
                },
            ),
            _ => (
                format!("{name} {}", KINDS[kind].singular),
                Intent::Kind {
                    kind,
                    brand: Some(brand),
                    adjective: None,
                },
            ),
        };
        push("accents", text, intent);
    }
    // Search as you type: the last word partly typed, for kinds whose last word is long
    // enough to be typed in part (six letters or more).
    let long_tail: Vec<usize> = mains
        .iter()
        .copied()
        .filter(|kind| {
            KINDS[*kind]
                .singular
                .rsplit(' ')
                .next()
                .is_some_and(|last| last.chars().count() >= 6)
        })
        .collect();
    for step in 0..20 {
        let kind = long_tail[(step * 7 + 4) % long_tail.len()];
        let singular = KINDS[kind].singular;
        let (head, last) = singular.rsplit_once(' ').unwrap_or(("", singular));
        // Three fifths of the word, four letters at least, and never a whole word of the
        // catalog ("back" of backpack is one): a partly typed word, not another query.
        let length = last.chars().count();
        let mut cut = (length * 3 / 5).max(4).min(length);
        let mut partial: String = last.chars().take(cut).collect();
        while cut < length && vocabulary.contains(&partial) {
            cut += 1;
            partial = last.chars().take(cut).collect();
        }
        assert!(cut < length, "{last} has no partial that is not a word");
        let (text, adjective) = if step % 3 == 0 {
            let adjective = kind_adjectives(kind)[step % 4];
            (
                format!("{} {head} {partial}", lower(ADJECTIVES[adjective])).replace("  ", " "),
                Some(adjective),
            )
        } else {
            (format!("{head} {partial}").trim().to_owned(), None)
        };
        push(
            "prefix",
            text,
            Intent::Kind {
                kind,
                brand: None,
                adjective,
            },
        );
    }
    // Synonyms (groups in `synonym_groups`), including forms no group lists.
    let synonym_cases: [(&str, &str, Option<usize>); 20] = [
        ("tv", "television", None),
        ("couch", "sofa", None),
        ("trainers", "sneaker", None),
        ("earphones", "earbud", None),
        ("notebook", "laptop", None),
        ("robot hoover", "robot vacuum", None),
        ("sweatshirt", "hoodie", None),
        ("water flask", "water bottle", None),
        ("{brand} tv", "television", Some(0)),
        ("{brand} couch", "sofa", Some(1)),
        ("{brand} trainers", "sneaker", Some(2)),
        ("{brand} earphones", "earbud", Some(3)),
        ("{brand} notebook", "laptop", Some(0)),
        ("{brand} sweatshirt", "hoodie", Some(1)),
        ("{brand} robot hoover", "robot vacuum", Some(2)),
        ("{brand} water flask", "water bottle", Some(3)),
        ("{adjective} tv", "television", None),
        ("{adjective} couch", "sofa", None),
        ("couches", "sofa", None),
        ("tvs", "television", None),
    ];
    for (step, (pattern, singular, brand_slot)) in synonym_cases.iter().enumerate() {
        let kind = kind_index(singular);
        let brand = brand_slot.map(|slot| kind_brands(kind)[slot]);
        let adjective = pattern
            .contains("{adjective}")
            .then(|| kind_adjectives(kind)[step % 4]);
        let text = pattern
            .replace(
                "{brand}",
                &brand.map(|b| lower(BRANDS[b].0)).unwrap_or_default(),
            )
            .replace(
                "{adjective}",
                &adjective.map(|a| lower(ADJECTIVES[a])).unwrap_or_default(),
            );
        push(
            "synonyms",
            text,
            Intent::Kind {
                kind,
                brand,
                adjective,
            },
        );
    }
    // Several words no product has all of: only the fallback (any word) finds something.
    let extras = [
        "for my campervan",
        "for a small apartment",
        "birthday present for grandpa",
        "for the dormitory",
        "christmas gift idea",
        "that my teenager likes",
    ];
    for step in 0..18 {
        let kind = mains[(step * 13 + 5) % mains.len()];
        let adjective = kind_adjectives(kind)[step % 4];
        let extra = extras[step % extras.len()];
        push(
            "fallback",
            format!(
                "{} {} {extra}",
                lower(ADJECTIVES[adjective]),
                KINDS[kind].singular
            ),
            Intent::Kind {
                kind,
                brand: None,
                adjective: Some(adjective),
            },
        );
    }
    // Longer than the ten words used: the eleventh and later words are ignored.
    let kettle = kind_index("kettle");
    let compact = kind_adjectives(kettle)[0];
    push(
        "fallback",
        format!(
            "hello i need a {} kettle please that is quiet and also pretty cheap",
            lower(ADJECTIVES[compact])
        ),
        Intent::Kind {
            kind: kettle,
            brand: None,
            adjective: Some(compact),
        },
    );
    let grinder = kind_index("coffee grinder");
    let adjective = kind_adjectives(grinder)[1];
    push(
        "fallback",
        format!(
            "best {} coffee grinder for espresso at home under one hundred dollars",
            lower(ADJECTIVES[adjective])
        ),
        Intent::Kind {
            kind: grinder,
            brand: None,
            adjective: Some(adjective),
        },
    );
    let mut seen = BTreeSet::new();
    for query in &out {
        assert!(
            seen.insert(query.text.trim().to_lowercase()),
            "{:?} twice",
            query.text
        );
        if query.category == "fallback" {
            let extra_words: Vec<String> = search::query_words(&query.text)
                .into_iter()
                .filter(|word| !vocabulary.contains(word))
                .collect();
            assert!(
                !extra_words.is_empty(),
                "fallback {:?}: some product has every word",
                query.text
            );
        }
    }
    out
}

/// The synonym groups an admin set for the catalog.
pub fn synonym_groups() -> Vec<Vec<String>> {
    [
        &["tv", "television"][..],
        &["couch", "sofa"],
        &["trainers", "sneakers"],
        &["earphones", "earbuds"],
        &["notebook", "laptop"],
        &["hoover", "vacuum"],
        &["sweatshirt", "hoodie"],
        &["flask", "bottle"],
    ]
    .iter()
    .map(|group| group.iter().map(|word| (*word).to_owned()).collect())
    .collect()
}
