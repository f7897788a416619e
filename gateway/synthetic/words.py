"""Names and words for synthetic data: people, places, schools and streets, all invented or
common enough to describe nobody, and the ways they are written down."""

from __future__ import annotations

import unicodedata
from datetime import date

# fmt: off
FORENAMES = (
    "Oliver", "George", "Harry", "Noah", "Jack", "Leo", "Arthur", "Oscar", "Charlie", "Freddie",
    "Alfie", "Thomas", "William", "James", "Joshua", "Henry", "Theo", "Archie", "Samuel",
    "Joseph", "Daniel", "Jacob", "Benjamin", "Alexander", "Edward", "Max", "Isaac", "Ethan",
    "Mason", "Riley", "Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Isabella",
    "Rosie", "Sophia", "Grace", "Freya", "Ella", "Evie", "Poppy", "Florence", "Charlotte",
    "Emily", "Jessica", "Sophie", "Ruby", "Daisy", "Elizabeth", "Katherine", "Rebecca",
    "Abigail", "Matilda", "Alice", "Zoë", "Chloé",
    "Mohammed", "Muhammad", "Aarav", "Arjun", "Rohan", "Vihaan", "Ayaan", "Ibrahim", "Yusuf",
    "Zain", "Hamza", "Aisha", "Fatima", "Zara", "Priya", "Ananya", "Diya", "Saanvi", "Maryam",
    "Inaya", "Anika", "Simran", "Harpreet",
    "Łukasz", "Jakub", "Kacper", "Szymon", "Filip", "Mateusz", "Oliwia", "Zuzanna", "Julia",
    "Natalia", "Wiktoria", "Maja", "Andrei", "Mihai", "Elena", "Ioana", "Dominik", "Tomáš",
    "Seán", "Niamh", "Aoife", "Ciarán", "Siobhán", "Oisín", "Róisín", "Cian", "Saoirse",
    "Oluwaseun", "Chidi", "Adaeze", "Tobi", "Kwame", "Amara",
)
SURNAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
    "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood",
    "Jackson", "Clarke", "Harris", "Lewis", "Turner", "Hill", "Cooper", "Ward", "Morris", "King",
    "Baker", "Harrison", "Morgan", "Fletcher", "Chapman", "Marsh", "Pearce", "Webb",
    "Patel", "Khan", "Ali", "Hussain", "Ahmed", "Begum", "Shah", "Singh", "Kaur", "Sharma",
    "Mistry", "Chaudhry", "Rahman", "Iqbal",
    "Kowalski", "Nowak", "Wiśniewski", "Wójcik", "Kowalczyk", "Lewandowski", "Popescu",
    "Ionescu", "Novák", "Horváth", "Petrov", "Kazlauskas",
    "O'Neill", "O'Brien", "O'Connor", "O'Sullivan", "McCarthy", "Murphy", "Kelly", "Byrne",
    "D'Souza", "Okafor", "Mensah", "Adeyemi", "Nguyen", "Chen", "Ferreira", "Silva",
    "Smith-Jones", "Taylor-Brown", "Evans-Hughes", "Ahmed-Khan", "Fletcher-Wood",
    "Lloyd-Williams", "Clarke-Mensah",
)
ADULT_FORENAMES = (
    "Sarah", "Helen", "Claire", "Rachel", "Emma", "Joanne", "Karen", "Nicola", "Louise",
    "Michelle", "Mark", "David", "Paul", "Andrew", "Richard", "Simon", "Gareth", "Priya",
    "Nadia", "Agnieszka", "Siobhán", "Femi", "Ruth", "Anil", "Kerry", "Hélène",
)
# Short forms the police write for a child the roll knows by the full name.
NICKNAMES: dict[str, tuple[str, ...]] = {
    "William": ("Will", "Billy"), "Thomas": ("Tom", "Tommy"), "James": ("Jamie", "Jim"),
    "Alexander": ("Alex",), "Elizabeth": ("Lizzie", "Beth"), "Katherine": ("Kate", "Katie"),
    "Samuel": ("Sam", "Sammy"), "Joseph": ("Joe",), "Benjamin": ("Ben",), "Daniel": ("Danny",),
    "Charlotte": ("Lottie",), "Rebecca": ("Becky",), "Jessica": ("Jess",), "Abigail": ("Abi",),
    "Oliver": ("Ollie",), "Jacob": ("Jake",), "Henry": ("Harry",), "Edward": ("Eddie", "Ted"),
    "Olivia": ("Liv",), "Matilda": ("Tilly",), "Florence": ("Flo",), "Isabella": ("Bella",),
    "Frederick": ("Freddie",), "Muhammad": ("Mohammed",), "Oluwaseun": ("Seun",),
    "Łukasz": ("Lukas",), "Jakub": ("Kuba",), "Aleksandra": ("Ola",),
}
# Twins' names that a tired officer could mix up.
TWIN_NAMES = (
    ("Jack", "Jake"), ("Ella", "Ellie"), ("Lily", "Lila"), ("Harry", "Harvey"),
    ("Amelia", "Amelie"), ("Mia", "Maya"), ("Aiden", "Aidan"), ("Leo", "Theo"),
    ("Isla", "Isabel"), ("Oliver", "Olivia"), ("Filip", "Felix"), ("Aarav", "Aryan"),
)
PLACE_STARTS = (
    "Ash", "Bar", "Bourn", "Bramp", "Cald", "Castle", "Cherry", "Coton", "Elm", "Fen", "Ferry",
    "Fox", "Gran", "Hail", "Hare", "Hemp", "Hol", "Kings", "Lang", "Lin", "Lode", "Marsh", "Mel",
    "Mill", "Nene", "Oak", "Orton", "Ouse", "Raven", "Rush", "Sand", "Sed", "Stan", "Swan",
    "Thorn", "Wad", "Water", "Willow", "Wold", "Wyn", "Broad", "Cold", "Deep", "Heath",
)
PLACE_ENDS = (
    "bridge", "brook", "bury", "by", "combe", "den", "field", "ford", "ham", "ley", "mere",
    "stead", "ton", "well", "wick", "worth", "hythe", "lode", "holme", "fleet",
)
PLACE_PREFIXES = ("", "", "", "", "Great ", "Little ", "Upper ", "Lower ", "North ", "South ",
                   "East ", "West ", "Long ")
SAINTS = ("St Mary's", "St Andrew's", "St John's", "St Peter's", "St Luke's", "Holy Trinity",
           "St Bede's", "All Saints'", "St Laurence's", "St Alban's", "Our Lady's")
STREETS = ("School Lane", "Church Street", "High Street", "Mill Road", "Station Road",
            "Green End", "The Causeway", "Back Lane", "Manor Road", "Park Avenue", "Fen Road",
            "Chapel Lane", "Queen's Drive", "Meadow Way", "College Road")
# fmt: on
_ASCII_FOLD = str.maketrans({"Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "ß": "ss", "Æ": "AE"})


def ascii_fold(text: str) -> str:
    """`text` without accents or letters outside ASCII (Zoë → Zoe, Łukasz → Lukasz)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_FOLD))
    return decomposed.encode("ascii", "ignore").decode("ascii")


def uk_date(value: date) -> str:
    """dd/mm/yyyy, as the LA's systems and most police exports write a date."""
    return f"{value.day:02d}/{value.month:02d}/{value.year}"
