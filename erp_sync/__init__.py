"""erp-sync: keeps a legacy ERP and an e-commerce platform in sync.

The one import root. Its subpackages live in the repository's top-level folders (`shared/`,
`ingress/`, `workers/`, `sandbox_erp/`, linked here) and point one way: shared ← ingress,
workers, sandbox_erp ← `erp_sync.cli`, the command line.
"""
