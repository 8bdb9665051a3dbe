"""twinline: digital twin and MES data platform for electronics manufacturing lines."""
