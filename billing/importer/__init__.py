"""Call record import, in three steps: ``parse`` reads and checks the CSV, ``load`` stores the good
lines in bulk, ``pipeline`` runs the two over a file in batches and rates what was imported."""
