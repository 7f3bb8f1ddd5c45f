//! The cases about a product's uploaded images.

use events::{AddedImage, CatalogEvent, ImageRemoved, ImagesAdded};

use super::{Log, Pair};

fn added(id: &str) -> AddedImage {
    AddedImage {
        id: id.to_owned(),
        url: format!("/images/{id}.page.jpg"),
        thumbnail_url: format!("/images/{id}.thumb.jpg"),
        width: 1200,
        height: 800,
    }
}

pub async fn uploaded_images_are_appended_once_and_a_removed_one_leaves(pair: Pair) {
    let mut log = Log::new(pair);
    log.category("tools").await;
    let id = log.product("A", "tools", 100, 10, 1).await;
    let first = "0".repeat(32);
    let second = "1".repeat(32);
    for image in [&first, &second, &first] {
        let event = CatalogEvent::ImagesAdded(ImagesAdded {
            images: vec![added(image)],
        });
        log.record(id, event, 2).await;
    }
    let images = |product: Option<std::sync::Arc<crate::read_model::view::ProductView>>| {
        product.expect("visible").images.clone()
    };
    let (product, _) = log.model.product(id, log.at()).await.expect("read");
    assert_eq!(
        images(product),
        vec![added(&first).url, added(&second).url],
        "each URL once, in upload order"
    );
    let removal = CatalogEvent::ImageRemoved(ImageRemoved {
        image_id: first.clone(),
        url: added(&first).url,
    });
    log.record(id, removal, 3).await;
    let (product, _) = log.model.product(id, log.at()).await.expect("read");
    assert_eq!(images(product), vec![added(&second).url]);
}
