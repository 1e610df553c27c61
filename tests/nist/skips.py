"""NIST testkit steps that cannot apply to this gateway, each with the precise reason.

Keys: ``test``, ``test/section`` or ``test/section/step`` (section "" for flat tests).
"""

_ITI51 = ("ITI-51 Multi-Patient Stored Query (MPQTransaction) is a separate option the "
          "registry does not offer")
_ON_DEMAND = ("On-Demand DocumentEntries need ITI-61 Register On-Demand Document Entry "
              "(RegisterODDETransaction), which the registry does not implement; every later "
              "section queries the on-demand entry registered first")
_NO_SUMMARIES = ("testkit data inconsistency: expects a DocumentEntry with classCode "
                 "SUMMARIES^^1.3.6.1.4.1.19376.1.2.6.1, which none of 12346's submissions "
                 "carries (they have IMAGES, 57016-8, HEALTH, DISPENSATIONS)")

SKIP: dict[str, str] = {
    "12361": "loads data for ITI-51 only (test 12364); " + _ITI51,
    "12364": _ITI51,
    "15805": _ON_DEMAND,
    "11897/classcode_scheme_2": _NO_SUMMARIES,
    "11897/classcode_practicesetting": _NO_SUMMARIES,
}
