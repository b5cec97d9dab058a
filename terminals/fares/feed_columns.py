"""The columns each file of a fare feed may have: the GTFS reference's, plus onecard's extensions.

A real agency feed carries columns this list does not name (its own, or newer GTFS ones): the
reader ignores them and says so once per file and column, never once per row.
"""

from __future__ import annotations

KNOWN_COLUMNS: dict[str, frozenset[str]] = {
    name: frozenset(columns.split())
    for name, columns in {
        "agency.txt": "agency_id agency_name agency_url agency_timezone agency_lang agency_phone "
        "agency_fare_url agency_email cemv_support",
        "areas.txt": "area_id area_name",
        "calendar.txt": "service_id monday tuesday wednesday thursday friday saturday sunday "
        "start_date end_date",
        "calendar_dates.txt": "service_id date exception_type",
        "fare_leg_join_rules.txt": "from_network_id to_network_id from_stop_id to_stop_id",
        "fare_leg_rules.txt": "leg_group_id network_id from_area_id to_area_id "
        "from_timeframe_group_id to_timeframe_group_id fare_product_id rule_priority",
        "fare_media.txt": "fare_media_id fare_media_name fare_media_type",
        "fare_products.txt": "fare_product_id fare_product_name rider_category_id fare_media_id "
        "amount currency",
        "fare_transfer_rules.txt": "from_leg_group_id to_leg_group_id transfer_count "
        "duration_limit duration_limit_type fare_transfer_type fare_product_id",
        "networks.txt": "network_id network_name",
        "onecard_networks.txt": "network_id tap_mode open_leg_minutes",
        "rider_categories.txt": "rider_category_id rider_category_name is_default_fare_category "
        "eligibility_url",
        "route_networks.txt": "network_id route_id",
        "routes.txt": "route_id agency_id route_short_name route_long_name route_desc route_type "
        "route_url route_color route_text_color route_sort_order continuous_pickup "
        "continuous_drop_off network_id cemv_support",
        "stop_areas.txt": "area_id stop_id",
        "stops.txt": "stop_id stop_code stop_name tts_stop_name stop_desc stop_lat stop_lon "
        "zone_id stop_url location_type parent_station stop_timezone wheelchair_boarding "
        "level_id platform_code stop_access",
        "stop_times.txt": "trip_id arrival_time departure_time stop_id location_group_id "
        "location_id stop_sequence stop_headsign start_pickup_drop_off_window "
        "end_pickup_drop_off_window pickup_type drop_off_type continuous_pickup "
        "continuous_drop_off shape_dist_traveled timepoint pickup_booking_rule_id "
        "drop_off_booking_rule_id",
        "trips.txt": "route_id service_id trip_id trip_headsign trip_short_name direction_id "
        "block_id shape_id wheelchair_accessible bikes_allowed cars_allowed",
        "timeframes.txt": "timeframe_group_id start_time end_time service_id",
        "x_concessions.txt": "card_type rider_category_id",
        "x_fare_caps.txt": "cap_id rider_category_id network_id period amount currency",
    }.items()
}
