// Small DOM helpers shared by the pages' modules: look an element up by id, build one.

export const $ = (id) => document.getElementById(id);

/** A new `tag` element with an optional class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
