"""Numbers -> text and pixels: formatting, Markdown/HTML, charts, the report, the terminal."""
