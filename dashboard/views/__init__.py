"""Page blueprints (HTML): one blueprint per module, and charts.py, the SVG charts the pages draw."""
