-- The catalog read model the query side reads (through read replicas). Written only by the
-- read-model projector, one transaction per event, with the checkpoint in the same transaction.
CREATE TABLE rm_products (
    id             UUID   PRIMARY KEY,
    version        BIGINT NOT NULL,
    -- One per event applied: equal to `version` unless an event was ever applied twice.
    events_applied BIGINT NOT NULL,
    status         TEXT   NOT NULL,
    category       TEXT   NOT NULL,
    brand_key      TEXT,
    price_cents    BIGINT NOT NULL,
    stock          BIGINT NOT NULL,
    sales          BIGINT NOT NULL,
    -- Sort keys, ascending in each listing's order (ties by id), as the keyset cursors use them.
    newest_key     BIGINT NOT NULL,
    name_key       TEXT   COLLATE "C" NOT NULL,
    doc            JSONB  NOT NULL
);
CREATE INDEX rm_products_newest ON rm_products (newest_key, id) WHERE status = 'published';
CREATE INDEX rm_products_price_asc ON rm_products (price_cents, id) WHERE status = 'published';
CREATE INDEX rm_products_price_desc ON rm_products ((-price_cents), id) WHERE status = 'published';
CREATE INDEX rm_products_bestselling ON rm_products ((-sales), id) WHERE status = 'published';
CREATE INDEX rm_products_name ON rm_products (name_key, id) WHERE status = 'published';
CREATE INDEX rm_products_category_newest ON rm_products (category, newest_key, id) WHERE status = 'published';
CREATE INDEX rm_products_category_price_asc ON rm_products (category, price_cents, id) WHERE status = 'published';
CREATE INDEX rm_products_category_price_desc ON rm_products (category, (-price_cents), id) WHERE status = 'published';
CREATE INDEX rm_products_category_bestselling ON rm_products (category, (-sales), id) WHERE status = 'published';
CREATE INDEX rm_products_category_name ON rm_products (category, name_key, id) WHERE status = 'published';

CREATE TABLE rm_categories (
    slug         TEXT   PRIMARY KEY,
    aggregate_id UUID   NOT NULL UNIQUE,
    version      BIGINT NOT NULL,
    name         TEXT   NOT NULL,
    parent       TEXT
);

-- Published products per category, kept by upserts so a product event that arrives before
-- its category's (another partition) still counts.
CREATE TABLE rm_category_counts (
    category TEXT   PRIMARY KEY,
    products BIGINT NOT NULL
);

-- Per projection: every position up to `position` has been applied.
CREATE TABLE rm_checkpoints (
    projection TEXT   PRIMARY KEY,
    position   BIGINT NOT NULL
);
