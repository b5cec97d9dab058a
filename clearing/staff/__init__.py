"""Staff accounts: finance and admin staff who sign in to the console with a password."""
