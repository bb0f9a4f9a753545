"""Reading the console's pages as a person does: tables by their header cells, rows by
their row header, buttons and dialogs by their names."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect


def table_with(page: Page, header: str) -> Locator:
    """The table that has a column header named ``header``."""
    return page.locator("table").filter(
        has=page.get_by_role("columnheader", name=header, exact=True)
    )


def column(table: Locator, name: str) -> int:
    """The index of column ``name`` among a row's cells (the row header is 0)."""
    names = [text.strip() for text in table.locator("thead th, thead td").all_inner_texts()]
    return names.index(name)


def row(table: Locator, name: str) -> Locator:
    """The body row whose row header says ``name``."""
    return table.locator("tbody tr").filter(
        has=table.page.get_by_role("rowheader", name=name, exact=True)
    )


def cell(table: Locator, row_name: str, column_name: str) -> Locator:
    return row(table, row_name).locator("th, td").nth(column(table, column_name))


def confirm(page: Page, button: str, *, says: str) -> None:
    """Press ``button``, check the dialog says ``says``, and press Confirm."""
    page.get_by_role("button", name=button, exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(says)
    dialog.get_by_role("button", name="Confirm", exact=True).click()
    expect(dialog).to_be_hidden()


ACTIONS = ("Purge", "Redrive", "Pause", "Resume", "Retry", "Delete", "Save")
