import { defineConfig } from 'vite';

// noVNC uses top-level await, so the bundle targets ES2022. The daemon serves `dist/`.
export default defineConfig({
  build: { target: 'es2022', sourcemap: false, chunkSizeWarningLimit: 1024 },
  server: { proxy: { '/api': { target: 'http://127.0.0.1:8080', ws: true } } },
});
