// The UI library, from one vendored ES module (Preact 10 + hooks + htm; see vendor.json).
export {
  html,
  render,
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
} from "../vendor/preact-htm.js";
