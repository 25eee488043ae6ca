"""A synthetic product catalog (generated for this project, no real products): the sample catalog
that ``verticals recommend up`` serves and the 100,000-item benchmark catalog."""

from __future__ import annotations

import random
from typing import Any

CATEGORIES: dict[str, tuple[list[str], list[str]]] = {
    "kitchen": (
        [
            "chef's knife",
            "frying pan",
            "coffee grinder",
            "cutting board",
            "kettle",
            "saucepan",
            "espresso machine",
            "mixing bowl",
            "spice rack",
            "toaster",
        ],
        ["stainless steel", "cast iron", "bamboo", "ceramic", "copper", "non-stick"],
    ),
    "outdoor": (
        [
            "tent",
            "sleeping bag",
            "hiking backpack",
            "camping stove",
            "headlamp",
            "trekking poles",
            "water filter",
            "hammock",
            "rain jacket",
            "cooler box",
        ],
        ["ultralight", "waterproof", "ripstop nylon", "insulated", "four-season", "packable"],
    ),
    "electronics": (
        [
            "wireless earbuds",
            "bluetooth speaker",
            "smartwatch",
            "USB-C charger",
            "e-reader",
            "noise-cancelling headphones",
            "webcam",
            "mechanical keyboard",
            "portable SSD",
            "monitor",
        ],
        ["fast-charging", "4K", "low-latency", "long battery life", "compact", "aluminium"],
    ),
    "books": (
        [
            "mystery novel",
            "cookbook",
            "travel guide",
            "science fiction novel",
            "biography",
            "children's picture book",
            "history book",
            "poetry collection",
            "graphic novel",
            "self-help book",
        ],
        ["hardcover", "paperback", "illustrated", "award-winning", "bestselling", "annotated"],
    ),
    "toys": (
        [
            "building blocks",
            "puzzle",
            "plush bear",
            "board game",
            "remote control car",
            "doll house",
            "science kit",
            "wooden train set",
            "card game",
            "kite",
        ],
        ["educational", "wooden", "colourful", "family", "STEM", "eco-friendly"],
    ),
    "apparel": (
        [
            "running shoes",
            "denim jacket",
            "wool sweater",
            "t-shirt",
            "yoga pants",
            "winter coat",
            "sneakers",
            "linen shirt",
            "scarf",
            "baseball cap",
        ],
        ["organic cotton", "merino wool", "recycled", "slim-fit", "breathable", "vintage"],
    ),
    "garden": (
        [
            "watering can",
            "pruning shears",
            "raised bed",
            "seed starter kit",
            "garden hose",
            "compost bin",
            "bird feeder",
            "lawn mower",
            "planter",
            "garden gloves",
        ],
        ["galvanised", "self-watering", "ergonomic", "weatherproof", "terracotta", "cordless"],
    ),
    "sports": (
        [
            "yoga mat",
            "dumbbell set",
            "tennis racket",
            "football",
            "cycling helmet",
            "jump rope",
            "foam roller",
            "swim goggles",
            "resistance bands",
            "basketball",
        ],
        ["non-slip", "adjustable", "professional", "lightweight", "grippy", "durable"],
    ),
    "beauty": (
        [
            "face serum",
            "moisturiser",
            "shampoo",
            "lip balm",
            "sunscreen",
            "hair dryer",
            "perfume",
            "face mask",
            "body lotion",
            "nail polish",
        ],
        ["fragrance-free", "vegan", "hydrating", "mineral", "travel-size", "sensitive-skin"],
    ),
    "home office": (
        [
            "desk lamp",
            "ergonomic chair",
            "standing desk",
            "notebook",
            "fountain pen",
            "monitor arm",
            "desk organiser",
            "whiteboard",
            "laptop stand",
            "filing cabinet",
        ],
        ["adjustable", "minimalist", "oak", "LED", "recycled paper", "steel"],
    ),
}
BRANDS = [
    "Northwind",
    "Alder & Co",
    "Brightline",
    "Kestrel",
    "Mossgrove",
    "Tidewater",
    "Vela",
    "Quarry",
    "Juniper",
    "Halcyon",
    "Oriel",
    "Pinecrest",
]
USES = [
    "everyday use",
    "beginners",
    "professionals",
    "small spaces",
    "travel",
    "gifts",
    "families",
    "weekend trips",
    "long days",
    "cold weather",
]


def generate_catalog(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` deterministic synthetic items with text, category, tags, price and stock."""
    rng = random.Random(seed)
    names = list(CATEGORIES)
    items = []
    for i in range(n):
        category = names[i % len(names)] if i < len(names) * 3 else rng.choice(names)
        nouns, traits = CATEGORIES[category]
        noun, trait, brand, use = (
            rng.choice(nouns),
            rng.choice(traits),
            rng.choice(BRANDS),
            rng.choice(USES),
        )
        second = rng.choice([t for t in traits if t != trait])
        items.append(
            {
                "id": f"sku-{i:06d}",
                "title": f"{brand} {trait} {noun}",
                "description": (
                    f"A {trait}, {second} {noun} from {brand}, made for {use}. "
                    f"Part of our {category} range."
                ),
                "category": category,
                "tags": sorted({trait, second, use}),
                "price": round(rng.lognormvariate(3.4, 0.7), 2),
                "in_stock": rng.random() > 0.1,
                "attributes": {"brand": brand, "generated": True},
            }
        )
    return items
