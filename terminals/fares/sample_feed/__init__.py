"""Sample GTFS-Fares v2 feed of a small high-plateau city (fictional Plateau City Bus Company).

Flat urban fare 2.00 CNY, suburban line 601 5.00 CNY; students pay half, seniors and disabled ride
free; one free urban transfer within 60 minutes of boarding; an urban ride is credited on a suburban
transfer within 60 minutes; daily cap 6.00 (adult) / 3.00 (student), weekly cap 30.00 (adult).
x_fare_caps.txt and x_concessions.txt are onecard extensions (GTFS has no capping or eligibility).
"""
