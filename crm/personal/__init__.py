"""Personal data encrypted per customer (crypto-shredding): data keys, field cipher, forgetting."""
