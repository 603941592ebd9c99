"""One module per verb: each registers its flags, calls one library function and prints what it
returns.  No verb imports another (tests/unit/test_boundary.py); what two verbs need is library."""
