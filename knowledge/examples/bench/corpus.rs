//! A deterministic synthetic business corpus and questions about it: many branches,
//! products and policies written from templates, so chunks are realistic English of the
//! default chunk size and their embeddings cluster by topic the way real knowledge bases do
//! (random vectors, HNSW's worst case, are measured separately in tests/pgvector.rs).

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use switchboard_knowledge::{ChunkingConfig, Document, chunk_document};

const CITIES: &[&str] = &[
    "Lyon", "Leeds", "Porto", "Austin", "Denver", "Malmo", "Turin", "Ghent", "Bergen", "Cork",
    "Dayton", "Tacoma", "Quebec", "Bristol", "Seville", "Graz", "Aarhus", "Basel", "Krakow",
    "Utrecht", "Boise", "Fresno", "Omaha", "Tulsa", "Reno", "Halifax", "Perth", "Dunedin",
    "Nantes", "Bilbao",
];
const DAYS: &[&str] = &[
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const ADJECTIVES: &[&str] = &[
    "compact",
    "deluxe",
    "cordless",
    "organic",
    "premium",
    "foldable",
    "insulated",
    "wireless",
    "stainless",
    "ergonomic",
    "waterproof",
    "heavy-duty",
    "portable",
    "modular",
    "vintage",
    "smart",
    "solar",
    "ceramic",
    "bamboo",
    "titanium",
];
const NOUNS: &[&str] = &[
    "kettle",
    "drill",
    "backpack",
    "desk lamp",
    "blender",
    "tent",
    "office chair",
    "speaker",
    "water bottle",
    "bike helmet",
    "standing desk",
    "air purifier",
    "rice cooker",
    "lawn mower",
    "coffee grinder",
    "yoga mat",
    "phone case",
    "toolbox",
    "humidifier",
    "space heater",
];
const NAMES: &[&str] = &[
    "Ana", "Ben", "Chloe", "Dario", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Keiko",
    "Luis", "Maya", "Nils", "Olga", "Pavel", "Rosa", "Sami", "Tara", "Ugo",
];
const SERVICES: &[&str] = &[
    "teeth cleaning",
    "eye exam",
    "oil change",
    "haircut",
    "tax consultation",
    "bike repair",
    "phone screen repair",
    "piano lesson",
    "dog grooming",
    "tire rotation",
];

fn hour(rng: &mut StdRng, from: u32, to: u32) -> String {
    let h = rng.random_range(from..=to);
    match h {
        0..=11 => format!("{h}am"),
        12 => "noon".to_owned(),
        _ => format!("{}pm", h - 12),
    }
}

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list.choose(rng).copied().unwrap_or("")
}

/// One paragraph of about 300–480 characters on a random topic.
fn paragraph(rng: &mut StdRng, n: usize) -> (String, String) {
    let city = pick(rng, CITIES);
    let product = format!("{} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS));
    let name = pick(rng, NAMES);
    let service = pick(rng, SERVICES);
    let (d1, d2) = (pick(rng, DAYS), pick(rng, DAYS));
    let price = rng.random_range(9..900);
    let days = rng.random_range(7..=90);
    let topic = rng.random_range(0..8);
    let text = match topic {
        0 => format!(
            "The {city} branch (store {n}) opens at {} and closes at {} from Monday to Friday. On {d1} it opens later, at {}, and it is closed on {d2} except in December. Public holidays follow the {city} calendar; the branch posts any change on its door and on the website a week ahead. Late collection of orders is possible until {} by arrangement.",
            hour(rng, 7, 10),
            hour(rng, 17, 21),
            hour(rng, 9, 12),
            hour(rng, 19, 22)
        ),
        1 => format!(
            "The {product} (item {n}) costs {price} dollars including tax. It comes with a {}-year warranty covering defects in materials and workmanship, but not wear, misuse or water damage. Spare parts for the {product} are stocked for five years after the model is discontinued, and a replacement is offered when a repair would take longer than {} days.",
            rng.random_range(1..=5),
            rng.random_range(5..=20)
        ),
        2 => format!(
            "Unused items bought in {city} can be returned within {days} days with the receipt for a full refund to the original payment method. Opened items such as the {product} are exchanged or refunded as store credit. Returns by mail are free when the order was delivered damaged; otherwise a {} dollar shipping fee is deducted from the refund (case {n}).",
            rng.random_range(4..=15)
        ),
        3 => format!(
            "Delivery to {city} takes {} to {} working days; orders placed before {} on a weekday leave the warehouse the same day. Express delivery costs {} dollars and arrives the next working day, never on {d2}. Large goods like the {product} are delivered by appointment, and the driver calls thirty minutes ahead (route {n}).",
            rng.random_range(1..=3),
            rng.random_range(4..=7),
            hour(rng, 11, 15),
            rng.random_range(8..=30)
        ),
        4 => format!(
            "To book a {service} in {city}, call the front desk or use the online calendar; appointments last {} minutes and cost {price} dollars. {name} runs the {service} on {d1} and {d2}. Please arrive ten minutes early, bring any previous records, and cancel at least {} hours ahead to avoid a cancellation fee (desk {n}).",
            rng.random_range(2..=9) * 10,
            rng.random_range(12..=48)
        ),
        5 => format!(
            "The {city} branch has free parking for {} cars behind the building, with two spaces reserved for disabled drivers next to the entrance. The nearest bus stop is {} metres away on line {}. Bicycles can be left in the covered rack, and electric cars can charge for {} dollars per hour at bay {n}.",
            rng.random_range(10..=120),
            rng.random_range(50..=600),
            rng.random_range(1..=40),
            rng.random_range(1..=6)
        ),
        6 => format!(
            "We accept cash, debit and credit cards, and mobile payments in {city}. Orders over {price} dollars can be paid in {} monthly instalments without interest. Gift cards are valid for {} years and can be used online and in every branch. Invoices for companies are issued by {name} in accounting within {} working days of the request (account {n}).",
            rng.random_range(3..=12),
            rng.random_range(1..=5),
            rng.random_range(2..=10)
        ),
        _ => format!(
            "{name} manages the {city} team of {} people. For complaints about the {product} or a {service}, ask for {name} or write to the customer care address; every complaint gets a written answer within {} working days. Loyalty members collect one point per dollar and get a {} percent discount on {d1}s (member desk {n}).",
            rng.random_range(4..=40),
            rng.random_range(2..=10),
            rng.random_range(5..=25)
        ),
    };
    let title = match topic {
        0 => format!("{city} opening hours"),
        1 => format!("{product} price and warranty"),
        2 => format!("Returns in {city}"),
        3 => format!("Delivery to {city}"),
        4 => format!("{service} appointments in {city}"),
        5 => format!("Parking at {city}"),
        6 => format!("Payment options in {city}"),
        _ => format!("Customer care in {city}"),
    };
    (title, text)
}

/// Documents making exactly `chunks` chunks under `chunking` (one paragraph per
/// document, most paragraphs one chunk), deterministic for a seed.
pub fn documents(chunks: usize, chunking: &ChunkingConfig, seed: u64) -> Vec<Document> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut docs = Vec::new();
    let mut total = 0;
    let mut n = 0;
    while total < chunks {
        n += 1;
        let (title, content) = paragraph(&mut rng, n);
        let doc = Document {
            id: format!("doc-{n:06}"),
            title,
            content,
            category: None,
        };
        let made = chunk_document(&doc, chunking).len();
        if total + made > chunks {
            continue;
        }
        total += made;
        docs.push(doc);
    }
    docs
}

/// Caller questions about the corpus's topics.
pub fn questions(count: usize, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let city = pick(&mut rng, CITIES);
            let day = pick(&mut rng, DAYS);
            let product = format!("{} {}", pick(&mut rng, ADJECTIVES), pick(&mut rng, NOUNS));
            let service = pick(&mut rng, SERVICES);
            match rng.random_range(0..8) {
                0 => format!("Are you open on {day} in {city}?"),
                1 => format!("How much is the {product}?"),
                2 => format!("Can I return something I bought in {city}?"),
                3 => format!("How long does delivery to {city} take?"),
                4 => format!("How do I book a {service}?"),
                5 => format!("Is there parking at the {city} store?"),
                6 => "Can I pay in instalments?".to_owned(),
                _ => format!("Who do I talk to about a problem with my {product}?"),
            }
        })
        .collect()
}
