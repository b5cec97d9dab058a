"""Card I/O: ISO 7816-4 APDUs, the PBOC/JT/T 978 electronic purse, its cryptography, transports.

It knows nothing of fares, money movement or the back office and never imports the other onecard packages.
"""
