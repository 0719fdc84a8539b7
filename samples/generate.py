#!/usr/bin/env python3
"""Writes the synthetic D&B Direct+ samples in this folder.

Every company, name, address, phone number and D-U-N-S here is invented.
The output is deterministic: running the script again rewrites the same
bytes (the zip is written with fixed entry metadata; its compressed bytes
depend only on zlib's deflate at level 9). Run it from anywhere:

    python3 samples/generate.py
"""

import copy
import hashlib
import json
import pathlib
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
REFERENCE = "DEMO_PORTFOLIO"
DELIVERY = f"{REFERENCE}_20250303070000_NOTIFICATION_1"
DELIVERY_DIR = HERE / "delivery"
NAICS = "North American Industry Classification System 2017"


def industry(code, description, priority):
    return {"code": code, "description": description, "typeDescription": NAICS,
            "typeDnBCode": 30832, "priority": priority}


def address(country, iso, city, region, region_code, postal, line1, line2=None):
    block = {
        "language": {"description": "English", "dnbCode": 331},
        "addressCountry": {"name": country, "isoAlpha2Code": iso},
        "addressLocality": {"name": city},
        "addressRegion": {"name": region},
        "postalCode": postal,
        "streetAddress": {"line1": line1, "line2": line2},
        "isRegisteredAddress": True,
    }
    if region_code:
        block["addressRegion"]["abbreviatedName"] = region_code
    return block


def organization(duns, name, trade, domain, phone, isd, addr, registered, start,
                 industries, employees, revenue, statement_date, reliability,
                 family_role, family_count, registration):
    return {
        "duns": duns,
        "dunsControlStatus": {
            "operatingStatus": {"description": "Active", "dnbCode": 9074},
            "isMarketable": True,
            "isMailUndeliverable": False,
            "isTelephoneDisconnected": False,
            "isDelisted": False,
        },
        "primaryName": name,
        "tradeStyleNames": [{"name": trade, "priority": 1}] if trade else [],
        "websiteAddress": [{"url": f"https://www.{domain}", "domainName": domain}],
        "telephone": [{"telephoneNumber": phone, "isdCode": isd, "isUnreachable": False}],
        "primaryAddress": addr,
        "registeredName": registered,
        "startDate": start,
        "industryCodes": industries,
        "numberOfEmployees": [{
            "value": employees,
            "informationScopeDescription": "Consolidated",
            "informationScopeDnBCode": 9067,
            "reliabilityDescription": "Actual",
            "reliabilityDnBCode": 9092,
        }],
        "financials": [{
            "financialStatementToDate": statement_date,
            "financialStatementDuration": "12 Months",
            "informationScopeDescription": "Consolidated",
            "reliabilityDescription": reliability,
            "unitCode": "Single Units",
            "yearlyRevenue": [{"value": revenue, "currency": "USD"}],
        }],
        "corporateLinkage": {
            "familytreeRolesPlayed": [{"description": family_role[0], "dnbCode": family_role[1]}],
            "globalUltimateFamilyTreeMembersCount": family_count,
        },
        "registrationNumbers": [{
            "registrationNumber": registration,
            "typeDescription": "Local registration number",
            "typeDnBCode": 99999,
            "isPreferredRegistrationNumber": True,
        }],
    }


GLOBAL_ULTIMATE = ("Global Ultimate", 12775)
SUBSIDIARY = ("Subsidiary", 9159)

BRIGHTWATER_ADDRESS = address("Germany", "DE", "Stuttgart", "Baden-Württemberg", "BW",
                              "70173", "Königstraße 41")
BRIGHTWATER = organization(
    "061934250", "Brightwater Instruments GmbH", "Brightwater Sensorik", "brightwater-instruments.de",
    "7112458830", "49", BRIGHTWATER_ADDRESS, "BRIGHTWATER INSTRUMENTS GMBH", "1987",
    [industry("334513", "Instruments and Related Products Manufacturing for Measuring", 1),
     industry("541330", "Engineering Services", 2)],
    412, 96312774.15, "2023-12-31", "Actual", GLOBAL_ULTIMATE, 9, "HRB 734512")
HARBOR_LANE = organization(
    "735019482", "Harbor Lane Foods Inc.", "Harbor Lane Pantry", "harborlanefoods.com",
    "5035550147", "1", address("United States", "US", "Portland", "Oregon", "OR", "97209",
                               "1120 NW Couch St", "Suite 400"),
    "HARBOR LANE FOODS INC.", "2009",
    [industry("311421", "Fruit and Vegetable Canning", 1),
     industry("424490", "Other Grocery and Related Products Merchant Wholesalers", 2)],
    238, 71480522.40, "2024-06-30", "Modelled", GLOBAL_ULTIMATE, 3, "OR-118204-93")
KESTREL = organization(
    "290577314", "Kestrel Freight Logistics Ltd", None, "kestrelfreight.co.uk",
    "1132460915", "44", address("United Kingdom", "GB", "Leeds", "West Yorkshire", None,
                                "LS1 4DY", "8 Wellington Place"),
    "KESTREL FREIGHT LOGISTICS LIMITED", "2014",
    [industry("484121", "General Freight Trucking, Long-Distance, Truckload", 1)],
    1290, 188240931.00, "2023-12-31", "Actual", SUBSIDIARY, 27, "09128374")
SALTMARSH = organization(
    "508842167", "Saltmarsh Céramiques SARL", "Saltmarsh Atelier", "saltmarsh-ceramiques.fr",
    "478609214", "33", address("France", "FR", "Lyon", "Auvergne-Rhône-Alpes", "ARA", "69002",
                               "17 Quai Saint-Antoine"),
    "SALTMARSH CERAMIQUES SARL", "1998",
    [industry("327110", "Pottery, Ceramics, and Plumbing Fixture Manufacturing", 1)],
    64, 8821940.62, "2023-12-31", "Modelled", GLOBAL_ULTIMATE, 1, "412 839 507")
QUILLFEATHER = organization(
    "913365048", "Quillfeather Publishing AB", "Quillfeather Kids", "quillfeather.se",
    "40287731", "46", address("Sweden", "SE", "Malmö", "Skåne", None, "211 22",
                              "Stortorget 9"),
    "QUILLFEATHER PUBLISHING AB", "2001",
    [industry("511130", "Book Publishers", 1),
     industry("519130", "Internet Publishing and Broadcasting and Web Search Portals", 2)],
    151, 23904418.90, "2023-12-31", "Actual", GLOBAL_ULTIMATE, 4, "556612-4410")
LARKSPUR = organization(
    "846203391", "Larkspur Analytics Inc.", "Larkspur Labs", "larkspuranalytics.io",
    "6175550183", "1", address("United States", "US", "Boston", "Massachusetts", "MA", "02110",
                               "99 High St", "Floor 12"),
    "LARKSPUR ANALYTICS INC.", "2016",
    [industry("541511", "Custom Computer Programming Services", 1),
     industry("518210", "Data Processing, Hosting, and Related Services", 2)],
    530, 126774309.55, "2024-12-31", "Actual", GLOBAL_ULTIMATE, 12, "001482776")
TIDEWATER = organization(
    "170448825", "Tidewater Marine Supply Ltd", None, "tidewatermarine.ie",
    "214902277", "353", address("Ireland", "IE", "Cork", "County Cork", None, "T12 X8N4",
                                "3 Penrose Wharf"),
    "TIDEWATER MARINE SUPPLY LIMITED", "1979",
    [industry("423860", "Transportation Equipment and Supplies Merchant Wholesalers", 1)],
    87, 19310554.08, "2023-12-31", "Actual", SUBSIDIARY, 6, "IE 58231")


def notification(kind, duns_or_org, delivered, elements=None):
    org = duns_or_org if isinstance(duns_or_org, dict) else {"duns": duns_or_org}
    return {"type": kind, "organization": org,
            "elements": [] if elements is None else elements,
            "deliveryTimeStamp": delivered}


def element(path, previous, current, at):
    return {"element": path, "previous": previous, "current": current, "timestamp": at}


def operating_status(at):
    return element("organization.dunsControlStatus.operatingStatus",
                   {"description": "Active", "dnbCode": 9074},
                   {"description": "Out of Business", "dnbCode": 403}, at)


def pull_response(transaction, at, notifications):
    return {
        "transactionDetail": {"transactionID": transaction, "transactionTimestamp": at,
                              "inLanguage": "en-US", "serviceVersion": "1"},
        "inquiryDetail": {"reference": REFERENCE},
        "notifications": notifications,
    }


def pull_responses():
    moved_address = copy.deepcopy(BRIGHTWATER_ADDRESS)
    moved_address["postalCode"] = "70565"
    moved_address["streetAddress"] = {"line1": "Industriestraße 12", "line2": "Gebäude C"}
    every_kind = [
        element("organization.primaryName", "Brightwater Instruments GmbH",
                "Brightwater Messtechnik GmbH", "2025-03-03T01:14:09Z"),
        element("organization.corporateLinkage.globalUltimateFamilyTreeMembersCount", 9, 11,
                "2025-03-03T01:14:09Z"),
        element("organization.dunsControlStatus.isMarketable", True, False, "2025-03-03T01:14:09Z"),
        element("organization.telephone", [],
                [{"telephoneNumber": "7112458999", "isdCode": "49", "isUnreachable": False}],
                "2025-03-03T01:14:09Z"),
        element("organization.industryCodes",
                [industry("334513", "Instruments and Related Products Manufacturing for Measuring", 1),
                 industry("541330", "Engineering Services", 2)],
                [industry("334516", "Analytical Laboratory Instrument Manufacturing", 1)],
                "2025-03-03T01:14:09Z"),
        element("organization.primaryAddress", BRIGHTWATER_ADDRESS, moved_address,
                "2025-03-03T01:14:09Z"),
        element("organization.primaryAddress.postalCode", "70173", None, "2025-03-03T01:14:09Z"),
        element("organization.tradeStyleNames", [],
                [{"name": "Brightwater Labs", "priority": 1}], "2025-03-03T01:14:09Z"),
        element("organization.websiteAddress",
                [{"url": "https://www.brightwater-instruments.de",
                  "domainName": "brightwater-instruments.de"}], [], "2025-03-03T01:14:09Z"),
    ]
    return {
        "update.json": pull_response(
            "rrt-5a1c07e9d24b3f816-b-eu-310482-2207164431-1", "2025-03-03T07:02:41.608Z", [
                notification("UPDATE", "061934250", "2025-03-03T07:01:14.233Z", every_kind),
                notification("UPDATE", "418207763", "2025-03-03T07:02:38.910Z", [
                    element("organization.dunsControlStatus.isMarketable", False, True,
                            "2025-03-02T19:40:02Z"),
                    element("organization.numberOfEmployees",
                            [{"value": 45, "informationScopeDescription": "Individual",
                              "informationScopeDnBCode": 9066,
                              "reliabilityDescription": "Estimated", "reliabilityDnBCode": 9093}],
                            [{"value": 52, "informationScopeDescription": "Individual",
                              "informationScopeDnBCode": 9066,
                              "reliabilityDescription": "Estimated", "reliabilityDnBCode": 9093}],
                            "2025-03-02T19:40:02Z"),
                ]),
            ]),
        "delete.json": pull_response(
            "rrt-0d93f2a61be7c4058-b-eu-518337-1093377820-1", "2025-03-03T07:05:49.121Z", [
                notification("DELETE", "735019482", "2025-03-03T07:05:44.318Z"),
            ]),
        "undelete.json": pull_response(
            "rrt-73be90c4a5d21f6e0-b-eu-640912-3380145527-1", "2025-03-03T07:06:30.770Z", [
                notification("UNDELETE", "562091738", "2025-03-03T07:06:27.402Z"),
            ]),
        "transfer.json": pull_response(
            "rrt-c42e18b0f97a6d351-b-eu-207745-2918840316-1", "2025-03-03T07:07:58.046Z", [
                notification("TRANSFER", "387201956", "2025-03-03T07:07:12.584Z", [
                    element("organization.duns", "387201956", "387201964", "2025-03-02T22:31:50Z"),
                ]),
                notification("TRANSFER", "605518420", "2025-03-03T07:07:55.019Z"),
            ]),
        "seed.json": pull_response(
            "rrt-9f6d2b83e015c7a4b-b-eu-771203-4102958816-1", "2025-03-03T07:08:40.315Z", [
                notification("SEED", LARKSPUR, "2025-03-03T07:08:36.872Z"),
            ]),
        "full_product.json": pull_response(
            "rrt-1e0a74c9b38f25d6c-b-eu-123870-0571249963-1", "2025-03-03T07:09:18.592Z", [
                notification("FULL_PRODUCT", TIDEWATER, "2025-03-03T07:09:15.147Z"),
            ]),
        "reviewed.json": pull_response(
            "rrt-b85f3d2e60a19c7f4-b-eu-995016-2644813097-1", "2025-03-03T07:09:51.233Z", [
                notification("REVIEWED", "274663105", "2025-03-03T07:09:47.690Z"),
            ]),
        "under_review.json": pull_response(
            "rrt-4c27a9e1f05d83b6a-b-eu-430558-1739206658-1", "2025-03-03T07:10:24.958Z", [
                notification("UNDER_REVIEW", "819340572", "2025-03-03T07:10:21.305Z"),
            ]),
        "exit.json": pull_response(
            "rrt-e60b1f37c82d4a95e-b-eu-682147-3951720084-1", "2025-03-03T07:11:03.417Z", [
                notification("EXIT", "350126679", "2025-03-03T07:10:59.886Z"),
            ]),
        "removed.json": pull_response(
            "rrt-27d8c5a04e1b96f3d-b-eu-359904-0826631475-1", "2025-03-03T07:11:40.802Z", [
                notification("REMOVED", "781240056", "2025-03-03T07:11:37.254Z"),
            ]),
    }


def notification_file():
    """One delivery: grouped by D-U-N-S, each D-U-N-S in ascending time, as D&B writes them."""
    return [
        # Brightwater: seeded, then a phone change, then a review that ends.
        notification("SEED", BRIGHTWATER, "2025-03-03T07:12:05.114Z"),
        notification("UPDATE", "061934250", "2025-03-03T07:26:41.530Z", [
            element("organization.telephone",
                    [{"telephoneNumber": "7112458830", "isdCode": "49", "isUnreachable": False}],
                    [{"telephoneNumber": "7112458830", "isdCode": "49", "isUnreachable": True}],
                    "2025-03-03T04:26:41Z"),
        ]),
        notification("UNDER_REVIEW", "061934250", "2025-03-03T07:41:18.006Z"),
        notification("REVIEWED", "061934250", "2025-03-03T08:02:57.749Z"),
        # Harbor Lane: seeded twice (a re-seed an hour later is a new notification),
        # changed, deleted as out of business, then undeleted.
        notification("SEED", HARBOR_LANE, "2025-03-03T07:13:22.681Z"),
        notification("SEED", HARBOR_LANE, "2025-03-03T07:14:22.681Z"),
        notification("UPDATE", "735019482", "2025-03-03T07:30:09.377Z", [
            element("organization.primaryAddress.postalCode", "97209", None,
                    "2025-03-03T05:30:09Z"),
            element("organization.tradeStyleNames", HARBOR_LANE["tradeStyleNames"], [],
                    "2025-03-03T05:30:09Z"),
        ]),
        notification("DELETE", "735019482", "2025-03-03T07:52:44.208Z",
                     [operating_status("2025-03-03T05:52:44Z")]),
        notification("UNDELETE", "735019482", "2025-03-03T08:20:31.945Z"),
        # Kestrel: full product, then its D-U-N-S is transferred to a successor.
        notification("FULL_PRODUCT", KESTREL, "2025-03-03T07:15:36.402Z"),
        notification("UPDATE", "290577314", "2025-03-03T07:33:50.118Z", [
            element("organization.primaryAddress.streetAddress.line1", "8 Wellington Place",
                    "2 Whitehall Quay", "2025-03-03T05:33:50Z"),
        ]),
        notification("TRANSFER", "290577314", "2025-03-03T07:58:13.660Z", [
            element("organization.duns", "290577314", "290577322", "2025-03-03T05:58:13Z"),
        ]),
        # Saltmarsh: seeded, then leaves D&B monitoring.
        notification("SEED", SALTMARSH, "2025-03-03T07:18:52.073Z"),
        notification("EXIT", "508842167", "2025-03-03T08:05:27.531Z"),
        notification("REMOVED", "508842167", "2025-03-03T08:31:04.290Z"),
        # Northgate: never seeded (no HubSpot company): an update, then a delete.
        notification("UPDATE", "047718903", "2025-03-03T07:21:15.884Z", [
            element("organization.dunsControlStatus.isMarketable", True, False,
                    "2025-03-02T21:15:15Z"),
        ]),
        notification("DELETE", "047718903", "2025-03-03T07:49:38.012Z",
                     [operating_status("2025-03-03T05:49:38Z")]),
        # Quillfeather: seeded, grows, then a transfer whose successor D&B does not name.
        notification("SEED", QUILLFEATHER, "2025-03-03T07:23:40.667Z"),
        notification("UPDATE", "913365048", "2025-03-03T07:36:02.295Z", [
            element("organization.numberOfEmployees",
                    QUILLFEATHER["numberOfEmployees"],
                    [dict(QUILLFEATHER["numberOfEmployees"][0], value=173)],
                    "2025-03-03T05:36:02Z"),
        ]),
        notification("TRANSFER", "913365048", "2025-03-03T08:12:49.803Z"),
        # 624409871: never seeded: under review.
        notification("UNDER_REVIEW", "624409871", "2025-03-03T07:44:55.139Z"),
    ]


EXCEPTIONS = [
    ("DUNS", "Code", "Information"),
    ("000000000", "10001", "DUNS number is not valid"),
    ("552910337", "10002", "DUNS number is not found"),
    ("061934250", "10003", "DUNS number is already registered in this registration"),
]


def write(path, data):
    path.write_bytes(data)
    print(f"wrote {path.relative_to(HERE.parent)}")


def main():
    for name, document in pull_responses().items():
        write(HERE / name, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())

    lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in notification_file())
    write(HERE / f"{DELIVERY}.ndjson", lines.encode())

    DELIVERY_DIR.mkdir(exist_ok=True)
    entry = zipfile.ZipInfo(f"{DELIVERY}.txt", date_time=(2025, 3, 3, 7, 0, 0))
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.create_system = 3
    entry.external_attr = 0o100644 << 16
    zip_path = DELIVERY_DIR / f"{DELIVERY}.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr(entry, lines.encode(), compresslevel=9)
    print(f"wrote {zip_path.relative_to(HERE.parent)}")

    header = {"fileHeader": {
        "headerType": "NOTIFICATION",
        "reference": REFERENCE,
        "totalRecordCount": lines.count("\n"),
        "fileTimeStamp": "2025-03-03T07:00:00Z",
        "files": [{"name": zip_path.name,
                   "hash": hashlib.sha256(zip_path.read_bytes()).hexdigest()}],
    }}
    write(DELIVERY_DIR / f"{REFERENCE}_20250303070000_NOTIFICATION_HEADER.json",
          (json.dumps(header, indent=2) + "\n").encode())

    exceptions = "".join("\t".join(row) + "\n" for row in EXCEPTIONS)
    write(DELIVERY_DIR / f"{REFERENCE}_20250303070000_EXCEPTIONS_1.txt", exceptions.encode())


if __name__ == "__main__":
    main()
