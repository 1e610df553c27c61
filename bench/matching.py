"""XCPD matching quality and latency on a synthetic population.

    .venv/bin/python bench/matching.py            # --population 100000 --queries 2000 --seed 7

Builds (seeded) a population with realistic name frequencies (Zipf), loads it
into the SQL patient index of a fresh in-process gateway (SQLite unless
--database-url), then sends ITI-55 requests as real SOAP messages through the
Flask app: for people in the index, and as many for people who are not. Each
query is the person as a partner community would describe them: typos in names
(substitution, deletion, insertion, transposition), nicknames (Bill for
William), birth dates with day and month swapped or two digits transposed,
married names, a moved address, missing sex, address and phone.

Precision = matches naming the right person / all matches returned;
recall = people in the index found / people in the index asked for.
Latency is the whole request (SOAP in, ITI-55 answer out) at the client.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.app import create_app  # noqa: E402
from gateway.config import config_from_dict  # noqa: E402
from profiles.hl7v3.datatypes import AD, II, PN, TEL, TS, gender  # noqa: E402
from profiles.hl7v3.patient import Person  # noqa: E402
from profiles.hl7v3.wrapper import Device  # noqa: E402
from profiles.pix.demographics import NICKNAMES  # noqa: E402
from profiles.pix.ports import PatientRecord, key_of  # noqa: E402
from profiles.xcpd.hl7v3 import (  # noqa: E402
    PatientDiscoveryQuery,
    QueryParameters,
    parse_patient_discovery_response,
    patient_discovery_query_to_xml,
)
from profiles.xcpd.matching import MatchConfig  # noqa: E402

HOME = "1.3.6.1.4.1.21367.2011.2.1"
DOMAIN = HOME + ".1"
PARTNER = "2.16.840.1.113883.3.9999"
S12, WSA = "http://www.w3.org/2003/05/soap-envelope", "http://www.w3.org/2005/08/addressing"
ACTION = "urn:hl7-org:v3:PRPA_IN201305UV02:CrossGatewayPatientDiscovery"



def _words(text: str) -> list[str]:
    return text.split()


MALE = _words("""
JAMES ROBERT JOHN MICHAEL WILLIAM DAVID RICHARD JOSEPH THOMAS CHARLES CHRISTOPHER DANIEL
MATTHEW ANTHONY DONALD MARK PAUL STEVEN ANDREW KENNETH JOSHUA KEVIN BRIAN GEORGE EDWARD RONALD
TIMOTHY JASON JEFFREY RYAN JACOB GARY NICHOLAS ERIC JONATHAN STEPHEN LARRY JUSTIN SCOTT BRANDON
BENJAMIN SAMUEL GREGORY FRANK ALEXANDER RAYMOND PATRICK JACK DENNIS JERRY TYLER AARON JOSE ADAM
HENRY NATHAN DOUGLAS ZACHARY PETER KYLE WALTER ETHAN JEREMY HAROLD KEITH CHRISTIAN ROGER NOAH
GERALD CARL TERRY SEAN AUSTIN ARTHUR LAWRENCE JESSE DYLAN BRYAN JORDAN BRUCE ALBERT GABRIEL
LOGAN ALAN JUAN WAYNE ROY RALPH RANDY EUGENE VINCENT RUSSELL ELIJAH LOUIS PHILIP BOBBY JOHNNY
THEODORE
""")
FEMALE = _words("""
MARY PATRICIA JENNIFER LINDA ELIZABETH BARBARA SUSAN JESSICA SARAH KAREN NANCY LISA BETTY
MARGARET SANDRA ASHLEY KIMBERLY EMILY DONNA MICHELLE DOROTHY CAROL AMANDA MELISSA DEBORAH
STEPHANIE REBECCA SHARON LAURA CYNTHIA KATHLEEN AMY SHIRLEY ANGELA HELEN ANNA BRENDA PAMELA
NICOLE EMMA SAMANTHA KATHERINE CHRISTINE DEBRA RACHEL CATHERINE CAROLYN JANET RUTH MARIA
HEATHER DIANE VIRGINIA JULIE JOYCE VICTORIA OLIVIA KELLY CHRISTINA LAUREN JOAN EVELYN JUDITH
MEGAN CHERYL ANDREA HANNAH MARTHA JACQUELINE FRANCES GLORIA ANN TERESA KATHRYN SARA JANICE JEAN
ALICE MADISON DORIS ABIGAIL JULIA JUDY GRACE DENISE AMBER MARILYN BEVERLY DANIELLE THERESA
SOPHIA MARIE DIANA BRITTANY NATALIE ISABELLA CHARLOTTE ROSE ALEXIS KAYLA
""")
SURNAMES = _words("""
SMITH JOHNSON WILLIAMS BROWN JONES GARCIA MILLER DAVIS RODRIGUEZ MARTINEZ HERNANDEZ LOPEZ
GONZALEZ WILSON ANDERSON THOMAS TAYLOR MOORE JACKSON MARTIN LEE PEREZ THOMPSON WHITE HARRIS
SANCHEZ CLARK RAMIREZ LEWIS ROBINSON WALKER YOUNG ALLEN KING WRIGHT SCOTT TORRES NGUYEN HILL
FLORES GREEN ADAMS NELSON BAKER HALL RIVERA CAMPBELL MITCHELL CARTER ROBERTS GOMEZ PHILLIPS
EVANS TURNER DIAZ PARKER CRUZ EDWARDS COLLINS REYES STEWART MORRIS MORALES MURPHY COOK ROGERS
GUTIERREZ ORTIZ MORGAN COOPER PETERSON BAILEY REED KELLY HOWARD RAMOS KIM COX WARD RICHARDSON
WATSON BROOKS CHAVEZ WOOD JAMES BENNETT GRAY MENDOZA RUIZ HUGHES PRICE ALVAREZ CASTILLO SANDERS
PATEL MYERS LONG ROSS FOSTER JIMENEZ POWELL JENKINS PERRY RUSSELL SULLIVAN BELL COLEMAN BUTLER
HENDERSON BARNES GONZALES FISHER VASQUEZ SIMMONS ROMERO JORDAN PATTERSON ALEXANDER HAMILTON
GRAHAM REYNOLDS GRIFFIN WALLACE MORENO WEST COLE HAYES BRYANT HERRERA GIBSON ELLIS TRAN MEDINA
AGUILAR STEVENS MURRAY FORD CASTRO MARSHALL OWENS HARRISON FERNANDEZ MCDONALD WOODS WASHINGTON
KENNEDY WELLS VARGAS HENRY CHEN FREEMAN WEBB TUCKER GUZMAN BURNS CRAWFORD OLSON SIMPSON PORTER
HUNTER GORDON MENDEZ SILVA SHAW SNYDER MASON DIXON MUNOZ HUNT HICKS HOLMES PALMER WAGNER BLACK
ROBERTSON BOYD ROSE STONE SALAZAR FOX WARREN MILLS MEYER RICE SCHMIDT GARZA DANIELS FERGUSON
NICHOLS STEPHENS SOTO WEAVER RYAN GARDNER PAYNE GRANT DUNN
""")
STREETS = _words("MAIN OAK PINE MAPLE CEDAR ELM WASHINGTON LAKE HILL PARK VIEW RIVER SUNSET CHURCH")
CITIES = [("SPRINGFIELD", "IL", "627"), ("RIVERSIDE", "CA", "925"), ("FRANKLIN", "TN", "370"),
          ("GREENVILLE", "SC", "296"), ("BRISTOL", "CT", "060"), ("CLINTON", "IA", "527"),
          ("FAIRVIEW", "OR", "970"), ("SALEM", "MA", "019"), ("MADISON", "WI", "537")]
SYLLABLES = _words("al an ar bel ber can car dal den der fer gan har hol ken kin lan ler lin mar "
                   "mor nel ner par per ral ren ros sen ser tan ter ton van ver wal wen win zel")


@dataclass(frozen=True)
class Truth:
    """A synthetic person: what the index holds about them."""

    number: int
    given: str
    middle: str
    family: str
    sex: str
    birth: date
    street: str
    city: tuple[str, str, str]
    phone: str

    def record(self) -> PatientRecord:
        city, state, zip3 = self.city
        return PatientRecord(II(DOMAIN, f"P{self.number:07d}"), Person(
            names=(PN.of((self.given, self.middle), self.family),), gender=gender(self.sex),
            birth_time=TS(self.birth.strftime("%Y%m%d")),
            addresses=(AD.of(self.street, city.title(), state, zip3 + "01"),),
            telecoms=(TEL(f"tel:+1-{self.phone}", ("HP",)),)))


def zipf(rng: random.Random, items: list[str], s: float = 1.0) -> str:
    weights = [1 / (rank + 1) ** s for rank in range(len(items))]
    return rng.choices(items, weights)[0]


def people(rng: random.Random, count: int, start: int = 0) -> list[Truth]:
    synthetic = sorted({"".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3)))).upper()
                        for _ in range(4000)})
    surnames = SURNAMES + synthetic  # real names are the common ones; the tail is long
    weights_given = {}
    found = []
    for n in range(start, start + count):
        sex = rng.choice("MF")
        names = MALE if sex == "M" else FEMALE
        weights_given.setdefault(sex, [1 / (r + 1) ** 0.9 for r in range(len(names))])
        given = rng.choices(names, weights_given[sex])[0]
        birth = date(1930, 1, 1) + timedelta(days=rng.randrange(31000))
        found.append(Truth(
            n, given, rng.choice(names), zipf(rng, surnames, 0.8), sex, birth,
            f"{rng.randrange(1, 9999)} {rng.choice(STREETS).title()} St", rng.choice(CITIES),
            f"{rng.randrange(200, 999)}-555-{rng.randrange(10000):04d}"))
    return found


def typo(rng: random.Random, word: str) -> str:
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("sub", "del", "ins", "swap"))
    letter = rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    if kind == "sub":
        return word[:i] + letter + word[i + 1:]
    if kind == "del":
        return word[:i] + word[i + 1:]
    if kind == "ins":
        return word[:i] + letter + word[i:]
    return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:]


NICKS: dict[str, list[str]] = {}
for _nick, _fulls in NICKNAMES.items():
    for _full in _fulls:
        if _full != _nick:
            NICKS.setdefault(_full, []).append(_nick)


def slip(rng: random.Random, birth: date) -> str:
    text = birth.strftime("%Y%m%d")
    if rng.random() < 0.5 and birth.day <= 12 and birth.day != birth.month:
        return text[:4] + text[6:8] + text[4:6]
    i = rng.randrange(2, 7)
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def described(rng: random.Random, t: Truth) -> QueryParameters:
    """``t`` as another community knows them, with that community's mistakes."""
    given, family = t.given, t.family
    if rng.random() < 0.10 and NICKS.get(given):
        given = rng.choice(NICKS[given])
    elif rng.random() < 0.08:
        given = typo(rng, given)
    if t.sex == "F" and rng.random() < 0.02:
        family = zipf(rng, SURNAMES)  # married since
    elif rng.random() < 0.10:
        family = typo(rng, family)
    birth = t.birth.strftime("%Y%m%d")
    if rng.random() < 0.06:
        birth = slip(rng, t.birth)
    city, state, zip3 = t.city
    addresses = ()
    if rng.random() < 0.6:
        street, where = t.street, (city.title(), state, zip3 + "01")
        if rng.random() < 0.1:  # moved
            street, where = "12 New Rd", ("Elsewhere", "NY", "10001")
        addresses = (AD.of(street, *where),)
    return QueryParameters(
        names=(PN.of(given.title(), family.title()),),
        gender=gender(t.sex) if rng.random() > 0.1 else None,
        birth_time=TS(birth), addresses=addresses,
        telecoms=(TEL(f"tel:{t.phone}"),) if rng.random() < 0.3 else (),
        ids=(II(PARTNER, f"X{t.number}"),))


def envelope(parameters: QueryParameters) -> bytes:
    query = PatientDiscoveryQuery.new(
        parameters, sender=Device(II(PARTNER + ".9"), PARTNER), receiver=Device(II(HOME), HOME),
        assigning_authority=PARTNER)
    env = etree.Element(f"{{{S12}}}Envelope", nsmap={"s": S12, "a": WSA})
    header = etree.SubElement(env, f"{{{S12}}}Header")
    etree.SubElement(header, f"{{{WSA}}}Action").text = ACTION
    etree.SubElement(header, f"{{{WSA}}}MessageID").text = f"urn:uuid:{uuid.uuid4()}"
    etree.SubElement(env, f"{{{S12}}}Body").append(patient_discovery_query_to_xml(query))
    return etree.tostring(env)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--population", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000, help="per kind (in, not in)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--limit", type=int, default=None, help="candidate limit to try")
    parser.add_argument("--show-wrong", action="store_true", help="print each wrong match")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        cfg = config_from_dict({"community": {"home_community_id": HOME, "name": "Bench"},
                                "storage": {"data_dir": tmp}, "database": {"url": url}},
                               base=Path(tmp), environ={})
        app = create_app(cfg)
        app.extensions["gateway"].security = None  # matching is measured here, not XUA
        if args.limit:
            app.extensions["gateway"].ports.matching = MatchConfig(candidate_limit=args.limit)
        index, client = app.extensions["gateway"].ports.patients, app.test_client()
        population = people(rng, args.population)
        strangers = people(rng, args.queries, start=args.population)
        started = time.perf_counter()
        index.add_many(t.record() for t in population)
        loaded = time.perf_counter() - started
        asked = [(t, True) for t in rng.sample(population, args.queries)]
        asked += [(t, False) for t in strangers]
        rng.shuffle(asked)
        latencies, right, wrong, found, answers = [], 0, 0, 0, {"OK": 0, "NF": 0, "AE": 0}
        for truth, present in asked:
            parameters = described(rng, truth)
            body = envelope(parameters)
            t0 = time.perf_counter()
            resp = client.post("/xcpd", data=body, content_type="application/soap+xml")
            latencies.append((time.perf_counter() - t0) * 1000)
            reply = etree.fromstring(resp.data).find(f"{{{S12}}}Body")[0]
            r = parse_patient_discovery_response(reply)
            answers[str(r.query_response_code)] += 1
            expected = key_of(truth.record().id)
            ids = {key_of(m.patient.id) for m in r.matches}
            if ids:
                right += expected in ids
                wrong += bool(ids - {expected})
                if args.show_wrong and ids - {expected}:
                    print("asked", parameters, "\nfound", [index.get(II(*i)) for i in ids],
                          "\ntruth", truth.record() if present else "(not in the index)")
            found += present and expected in ids
        app.extensions["gateway"].database.dispose()
    matches = right + wrong
    print(f"population {args.population} (loaded in {loaded:.0f} s), queries "
          f"{args.queries} in the index + {args.queries} not, seed {args.seed}")
    print(f"answers: {answers}")
    print(f"precision {right / matches if matches else 1:.4f} ({wrong} wrong of {matches} "
          f"matches); recall {found / args.queries:.4f} ({found} of {args.queries})")
    print(f"ITI-55 latency ms: p50 {statistics.median(latencies):.1f}  "
          f"p95 {percentile(latencies, 95):.1f}  p99 {percentile(latencies, 99):.1f}  "
          f"max {max(latencies):.1f}")


if __name__ == "__main__":
    main()
