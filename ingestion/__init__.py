"""Getting data in: the ERP tables (`erp/`) and the campaign event files (`events/`)."""
