//! The index's fields, its analyzers, and products as documents (and back).

use projectors::read_model::ProductView;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
    STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RawTokenizer, SimpleTokenizer, Stemmer, TextAnalyzer,
    TokenStream,
};
use tantivy::{DocAddress, Index, Searcher, TantivyDocument};

const ANALYZER: &str = "catalog";
const FOLDED: &str = "catalog_folded";
const RAW_LOWER: &str = "lowercase_raw";

/// The version of the fields and analysis below. An index written with another version is
/// rebuilt from the events (`TantivyIndex::open` empties its directory), so a change here
/// must bump it.
pub(super) const SCHEMA_VERSION: u32 = 2;

/// The `id` of the document holding the index's settings (the synonyms): never published, so
/// never found.
pub(super) const SETTINGS_ID: &str = "settings:synonyms";

#[derive(Clone, Copy)]
pub(super) struct Fields {
    pub id: Field,
    pub name: Field,
    pub description: Field,
    pub brand: Field,
    pub sku: Field,
    pub category: Field,
    pub brand_key: Field,
    pub brand_raw: Field,
    pub price: Field,
    pub stock: Field,
    pub created: Field,
    pub status: Field,
    pub doc: Field,
    /// Name and brand words, folded but not stemmed: what suggestions complete and
    /// did-you-mean corrects to.
    pub words: Field,
}

pub(super) fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let analyzed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED),
        name: builder.add_text_field("name", analyzed.clone()),
        description: builder.add_text_field("description", analyzed.clone()),
        brand: builder.add_text_field("brand", analyzed),
        sku: builder.add_text_field(
            "sku",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(RAW_LOWER)
                    .set_index_option(IndexRecordOption::Basic),
            ),
        ),
        category: builder.add_text_field("category", STRING | FAST),
        brand_key: builder.add_text_field("brand_key", STRING),
        brand_raw: builder.add_text_field("brand_raw", STRING | FAST),
        price: builder.add_i64_field("price_cents", INDEXED | FAST),
        stock: builder.add_i64_field("stock", INDEXED | FAST),
        created: builder.add_i64_field("created", INDEXED | FAST),
        status: builder.add_text_field("status", STRING),
        doc: builder.add_text_field("doc", STORED),
        words: builder.add_text_field(
            "words",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(FOLDED)
                    .set_index_option(IndexRecordOption::WithFreqs),
            ),
        ),
    };
    (builder.build(), fields)
}

/// Registers the analyzers the schema names with `index`.
pub(super) fn register_analyzers(index: &Index) {
    index.tokenizers().register(ANALYZER, analyzer());
    index.tokenizers().register(FOLDED, folding());
    index.tokenizers().register(
        RAW_LOWER,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
}

/// The `catalog` analyzer: split on non-alphanumerics, lower-case, fold accents, stem.
pub(super) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The same analyzer without stemming: what a partly typed last word is compared with.
pub(super) fn folding() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

pub(super) fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while let Some(token) = stream.next() {
        out.push(token.text.clone());
    }
    out
}

/// A word as the index compares it: `(stem, folded)`, `None` for a word the analyzers drop.
pub(super) fn forms(
    stemmer: &mut TextAnalyzer,
    fold: &mut TextAnalyzer,
    word: &str,
) -> Option<(String, String)> {
    let stem = tokens(stemmer, word).into_iter().next()?;
    let folded = tokens(fold, word).into_iter().next()?;
    Some((stem, folded))
}

/// The document of a product: its searchable fields and the product itself, stored.
pub(super) fn document(fields: &Fields, product: &ProductView) -> TantivyDocument {
    let mut document = TantivyDocument::default();
    document.add_text(fields.id, product.id.to_string());
    document.add_text(fields.name, &product.name);
    document.add_text(fields.description, &product.description);
    if let Some(brand) = &product.brand {
        document.add_text(fields.brand, brand);
        document.add_text(fields.brand_key, brand.to_lowercase());
        document.add_text(fields.brand_raw, brand);
    }
    document.add_text(fields.sku, &product.sku);
    if product.status == events::ProductStatus::Published {
        document.add_text(fields.words, &product.name);
        if let Some(brand) = &product.brand {
            document.add_text(fields.words, brand);
        }
    }
    document.add_text(fields.category, &product.category);
    document.add_i64(fields.price, product.price_cents);
    document.add_i64(fields.stock, product.stock);
    document.add_i64(fields.created, product.created_at.timestamp_micros());
    document.add_text(fields.status, product.status.as_str());
    document.add_text(
        fields.doc,
        serde_json::to_string(product).unwrap_or_default(),
    );
    document
}

/// The document holding the synonyms.
pub(super) fn settings_document(fields: &Fields, synonyms: &crate::Synonyms) -> TantivyDocument {
    let mut document = TantivyDocument::default();
    document.add_text(fields.id, SETTINGS_ID);
    document.add_text(fields.status, "settings");
    document.add_text(
        fields.doc,
        serde_json::to_string(synonyms).unwrap_or_default(),
    );
    document
}

/// The product a document stores.
pub(super) fn stored(
    fields: &Fields,
    searcher: &Searcher,
    address: DocAddress,
) -> Option<ProductView> {
    let document: TantivyDocument = searcher.doc(address).ok()?;
    serde_json::from_str(document.get_first(fields.doc)?.as_str()?).ok()
}
