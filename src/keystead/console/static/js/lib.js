// The UI library: Preact, its hooks and htm, vendored as the packages publish them (UMD
// files loaded by index.html before this module; see vendor.json). htm turns tagged
// template literals into Preact elements, so no build step is needed.

const { h, render, createContext } = window.preact;
const hooks = window.preactHooks;

export const html = window.htm.bind(h);
export { createContext, h, render };
export const { useCallback, useContext, useEffect, useMemo, useRef, useState } = hooks;
