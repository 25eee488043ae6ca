"""Generated finance headlines (written for this project): templates x fictional companies.

Every template carries its topic and sentiment by construction. The last two templates of each
(topic, sentiment) cell are held out: training never sees them; the demo feed and the
"unseen wording" evaluation use only them. All companies and people are fictional.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

COMPANIES: list[tuple[str, str]] = [
    ("Halvorsen Bank", "HLVB"),
    ("Northwind Energy", "NWE"),
    ("Cobalt Ridge Mining", "CRM"),
    ("Veridian Pharma", "VRDP"),
    ("Quillon Software", "QLN"),
    ("Atlas Freight", "ATF"),
    ("Brightwater Utilities", "BWU"),
    ("Solace Retail", "SLR"),
    ("Kestrel Aerospace", "KSTA"),
    ("Mariner Insurance", "MRIN"),
    ("Pinecrest Foods", "PCF"),
    ("Helix Semiconductors", "HLXS"),
    ("Orchard Telecom", "ORTC"),
    ("Tessellate Motors", "TSLM"),
    ("Granite Peak Capital", "GPC"),
    ("Lumen Biotech", "LMBT"),
    ("Silverline Airlines", "SLVA"),
    ("Redfern Steel", "RDFS"),
    ("Copperleaf Chemicals", "CLC"),
    ("Aurora Payments", "AURP"),
    ("Westmarch Properties", "WMP"),
    ("Fenwick Media", "FNWK"),
    ("Ironbridge Construction", "IBC"),
    ("Nimbus Cloud Systems", "NMBS"),
    ("Baywood Hotels", "BWH"),
    ("Caldera Oil & Gas", "CDOG"),
    ("Everfield Agriculture", "EVFA"),
    ("Parallax Games", "PRLX"),
    ("Sterling Harbor Bank", "SHB"),
    ("Zephyr Wind Power", "ZWP"),
]
PEOPLE = [
    "Maria Lindqvist",
    "Daniel Okafor",
    "Priya Raman",
    "Tomasz Nowak",
    "Elena Castillo",
    "James Whitaker",
    "Akira Sato",
    "Nadia Haddad",
    "Oliver Brandt",
    "Grace Mensah",
]
BANKS = [
    "the Federal Reserve",
    "the ECB",
    "the Bank of England",
    "the Bank of Japan",
    "the Swiss National Bank",
    "the Reserve Bank of Australia",
]
COUNTRIES = ["US", "euro zone", "UK", "Japanese", "German", "Canadian", "Chinese", "Brazilian"]
COINS = ["Bitcoin", "Ether", "Solana", "stablecoin", "crypto"]
REGULATORS = [
    "the SEC",
    "EU regulators",
    "the FCA",
    "antitrust authorities",
    "the CFTC",
    "the Justice Department",
    "competition watchdogs",
]
INDICES = ["the S&P 500", "the Nasdaq", "the FTSE 100", "the DAX", "the Nikkei", "the Stoxx 600"]
QUARTERS = ["first-quarter", "second-quarter", "third-quarter", "fourth-quarter", "half-year"]

Cell = dict[str, list[str]]
TEMPLATES: dict[str, Cell] = {
    "earnings": {
        "negative": [
            "{co} shares slump after {q} profit misses forecasts",
            "{co} cuts full-year guidance as demand weakens",
            "{co} swings to a {amt} million loss in the {q} period",
            "Weak margins drag {co} earnings below expectations",
            "{co} issues profit warning, stock tumbles {pct}%",
            "{co} revenue falls {pct}% as orders dry up",
            "{co} posts surprise loss and suspends its dividend",
        ],
        "neutral": [
            "{co} to report {q} results next week",
            "{co} {q} revenue in line with analyst estimates",
            "{co} schedules earnings call for Thursday",
            "{co} keeps annual forecast unchanged",
            "Analysts expect flat {q} earnings at {co}",
            "{co} publishes {q} figures, guidance maintained",
            "What to watch when {co} reports on Tuesday",
        ],
        "positive": [
            "{co} beats estimates as {q} profit jumps {pct}%",
            "{co} raises annual outlook after strong quarter",
            "{co} posts record revenue, shares rise {pct}%",
            "Strong demand lifts {co} earnings above forecasts",
            "{co} boosts dividend after bumper {q} results",
            "{co} profit doubles on cost cuts and higher prices",
            "{co} margins widen, beating every analyst estimate",
        ],
    },
    "mergers_acquisitions": {
        "negative": [
            "{co} deal collapses after talks with {co2} break down",
            "{co2} rejects {co} takeover bid as undervalued",
            "{co} writes down {amt} million on failed acquisition",
            "Shareholders revolt against {co} merger with {co2}",
            "{co} abandons bid for {co2} amid financing troubles",
            "{co} takeover of {co2} blocked, shares slide {pct}%",
            "Hostile bid for {co} turns sour as {co2} walks away",
        ],
        "neutral": [
            "{co} confirms early talks to acquire {co2}",
            "{co} and {co2} agree to merge in all-share deal",
            "{co} explores sale of its logistics unit",
            "{co} completes purchase of {co2} unit",
            "{co2} hires advisers to review offer from {co}",
            "{co} considers bid for rival {co2}, sources say",
            "{co} to spin off consumer division next year",
        ],
        "positive": [
            "{co} shares soar on {amt} million buyout offer from {co2}",
            "{co} wins bidding war for {co2} at a premium",
            "{co2} agrees to sweetened {co} offer, stock jumps {pct}%",
            "{co} acquisition of {co2} set to boost earnings",
            "Investors cheer {co} merger with {co2}",
            "{co} lands transformative deal to buy {co2}",
            "{co} rallies as private equity firms circle",
        ],
    },
    "rates_central_banks": {
        "negative": [
            "{cb} signals more rate hikes as inflation persists",
            "Bond yields spike after hawkish surprise from {cb}",
            "{cb} warns of recession risk as it tightens again",
            "Mortgage rates climb to a two-decade high after {cb} decision",
            "{cb} shock hike rattles markets",
            "Borrowing costs jump as {cb} rules out rate cuts",
            "{cb} official warns tightening cycle is far from over",
        ],
        "neutral": [
            "{cb} holds rates steady, as expected",
            "{cb} minutes show policymakers divided on next move",
            "Traders await {cb} decision on Wednesday",
            "{cb} leaves policy unchanged and keeps guidance",
            "{cb} governor to testify before lawmakers",
            "Markets price in a pause from {cb}",
            "{cb} publishes its quarterly monetary policy report",
        ],
        "positive": [
            "{cb} cuts rates, lifting hopes for growth",
            "Stocks rally as {cb} signals end of tightening",
            "{cb} eases policy to support the recovery",
            "Bond markets cheer dovish tone from {cb}",
            "{cb} rate cut brings relief to borrowers",
            "Yields fall as {cb} hints at easing soon",
            "{cb} surprises with larger than expected cut",
        ],
    },
    "regulation_legal": {
        "negative": [
            "{reg} sues {co} over misleading investors",
            "{co} fined {amt} million for compliance failures",
            "{reg} opens probe into {co} accounting practices",
            "{co} hit with class action over data breach",
            "{co} faces criminal investigation into bribery claims",
            "Court rules against {co} in patent dispute, shares drop {pct}%",
            "{reg} raids {co} offices in fraud inquiry",
        ],
        "neutral": [
            "{reg} publishes new rules for {sector} firms",
            "{co} responds to request for information from {reg}",
            "Court hearing in {co} case set for next month",
            "{reg} launches consultation on disclosure rules",
            "{co} files annual report with {reg}",
            "Lawmakers debate new oversight of {sector} companies",
            "{reg} names new head of enforcement",
        ],
        "positive": [
            "{co} wins appeal, overturning {amt} million penalty",
            "{reg} drops investigation into {co}",
            "{co} cleared by {reg}, shares rise {pct}%",
            "{co} settles lawsuit on favourable terms",
            "Regulators approve {co} new drug ahead of schedule",
            "{co} secures licence to expand in Europe",
            "Court dismisses claims against {co}",
        ],
    },
    "markets": {
        "negative": [
            "{idx} tumbles {pct}% in broad sell-off",
            "Stocks slide as investors flee risky assets",
            "Global markets sink on growth fears",
            "{idx} posts worst week since March",
            "Volatility spikes as equities extend losses",
            "{co} leads decliners as {idx} drops",
            "Panic selling wipes billions off {idx}",
        ],
        "neutral": [
            "{idx} little changed in quiet trading",
            "Stocks mixed ahead of key data",
            "{idx} ends flat as traders weigh earnings",
            "Trading volumes thin before the holiday",
            "{idx} opens steady, oil prices unchanged",
            "Markets drift as investors await jobs report",
            "{co} added to {idx} in quarterly rebalance",
        ],
        "positive": [
            "{idx} hits record high on tech rally",
            "Stocks surge as investors return to risk",
            "{idx} climbs {pct}% in best day in months",
            "Global equities rally on upbeat data",
            "{co} leads gains as {idx} extends rally",
            "Bull market roars on as {idx} notches new peak",
            "Buyers pile into equities, lifting {idx}",
        ],
    },
    "macro": {
        "negative": [
            "{country} economy contracts unexpectedly in {q} period",
            "{country} inflation accelerates to {pct}%",
            "{country} unemployment rises to highest in years",
            "{country} factory output slumps as exports fall",
            "Consumer confidence in the {country} economy plunges",
            "{country} retail sales drop sharply",
            "Recession fears grow as {country} GDP shrinks",
        ],
        "neutral": [
            "{country} GDP data due on Friday",
            "{country} inflation steady at {pct}% in latest reading",
            "Economists see {country} growth flat this year",
            "{country} trade balance roughly unchanged",
            "{country} jobs report matches forecasts",
            "{country} government publishes budget outlook",
            "Survey: {country} business activity stable",
        ],
        "positive": [
            "{country} economy grows faster than expected",
            "{country} inflation cools to {pct}%, easing pressure on households",
            "{country} unemployment falls to record low",
            "{country} exports surge to all-time high",
            "{country} consumer spending rebounds strongly",
            "Upbeat {country} PMI points to solid expansion",
            "{country} wages rise as labour market strengthens",
        ],
    },
    "crypto": {
        "negative": [
            "{coin} plunges {pct}% as exchange halts withdrawals",
            "Crypto lender files for bankruptcy, {coin} slides",
            "Hackers steal {amt} million from {coin} platform",
            "{coin} crashes below key support level",
            "Crypto exchange accused of misusing customer funds",
            "{coin} tumbles as regulators crack down on trading",
            "Investors dump {coin} as token market unravels",
        ],
        "neutral": [
            "{coin} trades sideways as volumes fall",
            "Crypto exchange announces new listing rules",
            "{coin} network completes scheduled upgrade",
            "Lawmakers discuss rules for digital assets",
            "{coin} holds steady ahead of options expiry",
            "Bank pilots {coin} custody service",
            "Crypto fund flows flat this week",
        ],
        "positive": [
            "{coin} soars {pct}% to a new record",
            "Crypto rally lifts {coin} to a one-year high",
            "{coin} jumps after approval of exchange-traded fund",
            "Institutional buying pushes {coin} higher",
            "{coin} rebounds strongly as sentiment improves",
            "Crypto markets rally as inflows surge",
            "{coin} gains as major bank embraces digital assets",
        ],
    },
    "esg": {
        "negative": [
            "{co} accused of greenwashing in climate report",
            "Oil spill at {co} site sparks environmental outcry",
            "{co} misses emissions targets, investors protest",
            "Workers at {co} supplier report unsafe conditions",
            "{co} dropped from sustainability index",
            "Activists slam {co} over deforestation links",
            "{co} fined for toxic waste discharge",
        ],
        "neutral": [
            "{co} publishes annual sustainability report",
            "{co} sets new carbon reporting framework",
            "Investors file climate resolution at {co}",
            "{co} joins industry pledge on water use",
            "{co} updates its diversity disclosures",
            "{co} to report emissions under new standard",
            "{co} appoints head of sustainability",
        ],
        "positive": [
            "{co} cuts emissions by {pct}%, ahead of target",
            "{co} wins top ESG rating upgrade",
            "{co} commits {amt} million to renewable energy",
            "{co} hits net-zero milestone early",
            "{co} praised for supply chain transparency",
            "{co} issues record green bond",
            "{co} added to leading sustainability index",
        ],
    },
    "management": {
        "negative": [
            "{co} chief executive {ceo} resigns abruptly",
            "{co} CFO ousted amid accounting concerns",
            "Boardroom turmoil at {co} as chairman quits",
            "{co} fires CEO {ceo} after misconduct probe",
            "Investors call for {co} leadership overhaul",
            "{co} founder departs amid clash with board",
            "Top executives leave {co} in management exodus",
        ],
        "neutral": [
            "{co} names {ceo} as chief financial officer",
            "{co} board appoints new chair",
            "{co} announces planned CEO succession",
            "{ceo} to join {co} board in March",
            "{co} reshuffles management team",
            "{co} extends contract of chief executive {ceo}",
            "{co} creates new chief operating officer role",
        ],
        "positive": [
            "{co} shares jump as star executive {ceo} takes the helm",
            "Investors welcome new {co} CEO {ceo}",
            "{co} lands highly regarded turnaround chief",
            "{co} leadership change lifts stock {pct}%",
            "{co} new management team wins praise from analysts",
            "{ceo} named CEO of {co}, shares rally",
            "{co} strengthens board with seasoned industry veterans",
        ],
    },
    "other": {
        "negative": [
            "{co} recalls thousands of products over safety flaw",
            "Strike halts production at {co} plants",
            "{co} outage leaves millions of customers offline",
            "Fire shuts {co} factory for weeks",
            "{co} cuts {amt} jobs as business shrinks",
            "Cyberattack disrupts {co} operations",
            "{co} delays flagship product launch again",
        ],
        "neutral": [
            "{co} opens new office in {city}",
            "{co} unveils updated product line",
            "{co} to host investor day in {city}",
            "{co} moves headquarters to {city}",
            "{co} launches redesigned website",
            "{co} signs sponsorship deal",
            "{co} updates customer terms of service",
        ],
        "positive": [
            "{co} wins {amt} million contract",
            "{co} launch draws record pre-orders",
            "{co} to hire {amt} staff as business booms",
            "{co} opens largest plant to meet demand",
            "{co} named best employer in its sector",
            "{co} product wins industry award",
            "{co} partnership with {co2} expands reach",
        ],
    },
}
TOPICS = list(TEMPLATES)
SENTIMENTS = ["negative", "neutral", "positive"]
HELD_OUT = 2
SECTORS = ["banking", "insurance", "energy", "technology", "pharmaceutical", "retail"]
CITIES = ["Singapore", "Austin", "Dublin", "Warsaw", "Toronto", "Lisbon", "Seoul"]


@dataclass(frozen=True)
class Headline:
    title: str
    topic: str
    sentiment: str
    tickers: tuple[str, ...]
    entities: tuple[str, ...]


def templates(split: str) -> list[tuple[str, str, str]]:
    """(template, topic, sentiment) for ``split`` 'train' (seen) or 'heldout' (unseen)."""
    out = []
    for topic, cells in TEMPLATES.items():
        for sentiment, items in cells.items():
            chosen = items[:-HELD_OUT] if split == "train" else items[-HELD_OUT:]
            out += [(t, topic, sentiment) for t in chosen]
    return out


def fill(
    template: str,
    topic: str,
    sentiment: str,
    rng: random.Random,
    company: tuple[str, str] | None = None,
) -> Headline:
    """Fill one template; ``company`` pins the main company (for scripted demo spikes)."""
    co, ticker = company or rng.choice(COMPANIES)
    co2, ticker2 = rng.choice([c for c in COMPANIES if c[0] != co])
    values = {
        "co": co,
        "co2": co2,
        "ceo": rng.choice(PEOPLE),
        "cb": rng.choice(BANKS),
        "country": rng.choice(COUNTRIES),
        "coin": rng.choice(COINS),
        "reg": rng.choice(REGULATORS),
        "idx": rng.choice(INDICES),
        "q": rng.choice(QUARTERS),
        "pct": str(rng.choice([2, 3, 4, 5, 6, 8, 9, 11, 12, 15, 18, 22, 30])),
        "amt": str(rng.choice([40, 75, 120, 250, 300, 480, 600, 900, 1200])),
        "sector": rng.choice(SECTORS),
        "city": rng.choice(CITIES),
    }
    title = template.format(**values)
    title = title[0].upper() + title[1:]
    tickers = tuple(t for slot, t in (("{co}", ticker), ("{co2}", ticker2)) if slot in template)
    entities = tuple(n for n in (co, co2) if n in title)
    return Headline(title, topic, sentiment, tickers, entities)


def generate(n: int, split: str = "train", seed: int = 7) -> list[Headline]:
    """``n`` headlines from the templates of ``split``, balanced over topics."""
    rng = random.Random(seed)
    pool = templates(split)
    by_topic: dict[str, list[tuple[str, str, str]]] = {}
    for item in pool:
        by_topic.setdefault(item[1], []).append(item)
    seen: set[str] = set()
    out: list[Headline] = []
    attempts = 0
    while len(out) < n and attempts < n * 20:
        attempts += 1
        topic = TOPICS[len(out) % len(TOPICS)]
        template, _, sentiment = rng.choice(by_topic[topic])
        headline = fill(template, topic, sentiment, rng)
        if headline.title not in seen:
            seen.add(headline.title)
            out.append(headline)
    return out
