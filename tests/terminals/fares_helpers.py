"""Small feeds written inline for fare-engine tests (each test states only the files it needs)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from terminals.fares.feed import FareFeed, parse_feed

CST = timezone(timedelta(hours=8))

BASE = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\na,A,https://a.example,Asia/Shanghai\n",
    "fare_media.txt": "fare_media_id,fare_media_name,fare_media_type\ncard,Card,2\npaper,Paper,1\n",
    "rider_categories.txt": (
        "rider_category_id,rider_category_name,is_default_fare_category\n"
        "adult,Adult,1\nstudent,Student,0\nsenior,Senior,0\n"
    ),
    "networks.txt": "network_id,network_name\nbus,Bus\nmetro,Metro\nexpress,Express\n",
    "routes.txt": "route_id,route_type\nb1,3\nb2,3\nm1,1\nx1,3\n",
    "route_networks.txt": "network_id,route_id\nbus,b1\nbus,b2\nmetro,m1\nexpress,x1\n",
    "areas.txt": "area_id\nzone1\nzone2\nairport\n",
    "stops.txt": "stop_id\ns1\ns2\ns3\nap\n",
    "stop_areas.txt": "area_id,stop_id\nzone1,s1\nzone2,s2\nzone1,s3\nzone2,s3\nairport,ap\nzone2,ap\n",
    "x_concessions.txt": "card_type,rider_category_id\nadult,adult\nstudent,student\nsenior,senior\n",
}


def feed(**files: str) -> FareFeed:
    """A feed of BASE plus `files` (keyword = file name without .txt)."""
    merged = dict(BASE)
    for name, text in files.items():
        key = f"{name}.txt"
        if text is None:
            merged.pop(key, None)
        else:
            merged[key] = text
    return parse_feed(merged)


def at(hour: int, minute: int = 0, day: int = 30, second: int = 0) -> datetime:
    """A moment on 2026-11-<day> (a Monday for day 30) in Beijing time."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=CST)
