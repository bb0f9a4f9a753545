// The two dialogs: a confirmation before an action (Confirm, Cancel) and the token prompt.

/** Ask `text`; true when the person presses Confirm (Cancel and Escape say no). */
export function confirmAction(title, text) {
  const dialog = document.getElementById("confirm");
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-text").textContent = text;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
    dialog.showModal();
  });
}

/** Ask for the token (`problem`: why again); the token given, or null if the dialog was closed. */
export function askToken(problem) {
  const dialog = document.getElementById("token");
  const input = dialog.querySelector("#token-input");
  dialog.querySelector("#token-error").textContent = problem;
  input.value = "";
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "use" && input.value ? input.value : null),
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
}
