// The inventory dashboard. Bundled by build.mjs and served by the service at /, with every
// asset from the service itself (the page's Content-Security-Policy allows nothing else).
import { createRoot } from 'react-dom/client';
import { App } from './App.jsx';
import './style.css';

createRoot(document.getElementById('dashboard')).render(<App />);
