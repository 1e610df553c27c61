"""The partner directory: communities we exchange with, from gateway.toml and the database.

    model.py      Partner, Quirks, endpoints_for, partner_from_table ([[partners]])
    tables.py     the ``partners`` table (CLI-managed entries)
    directory.py  PartnerDirectory: get/all (file first, then database), add/remove
    trust.py      inbound trust of a CLI-registered partner's CA (TLS trust store)
    cli.py        ``ihe-gateway partners add|list|show|remove|test`` (partners_group)
"""

from gateway.partners.directory import PartnerDirectory
from gateway.partners.model import Partner, PartnerError, Quirks, endpoints_for, hcid

__all__ = ["Partner", "PartnerDirectory", "PartnerError", "Quirks", "endpoints_for", "hcid"]
