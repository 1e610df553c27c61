"""End-to-end tests: real ``ihe-gateway serve`` processes over real (mutual) TLS on loopback.

A regular package, so the package-scoped server fixture stops after the last
test here instead of living until the end of the whole session.
"""
