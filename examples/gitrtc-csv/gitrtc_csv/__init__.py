"""gitrtc-csv: CSV files shared as a table (kind `csv`) and a `validate` service.

An example of gitrtc's plugin API (docs/plugins.md): install it next to gitrtc
(`pip install -e examples/gitrtc-csv`) and `rtc start data.csv` shares the file as rows
of cells, edited in a grid in the browser.
"""
