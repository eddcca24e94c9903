"""Access-control rules: their language (rules), storing them and listing what a person may use
(service), and their endpoints."""
