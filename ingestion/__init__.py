"""Getting data in: the ERP tables (sync), the campaign event files, and the demo generator."""
