"""Black-box conformance stages run against a live server (``make test-conformance``)."""
