"""Page blueprints (HTML): one module per view; crew, driver and coordinator views come later."""
